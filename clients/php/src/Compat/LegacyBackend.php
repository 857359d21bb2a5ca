<?php

declare(strict_types=1);

namespace Mikolicd\Compat;

use Mikolicd\Client;
use Mikolicd\Error;
use Mikolicd\Http;
use SimpleXMLElement;

/**
 * @internal The License class over license.api on the agent's TCP listener (docs/legacy-api.md): form
 * fields in, JSON out; failures are non-200 with the agent's own text, which already says what failed.
 */
final class LegacyBackend implements Backend
{
    private readonly Http $http;

    /** @param string $url the listener, e.g. http://127.0.0.1:8223 */
    public function __construct(string $url)
    {
        $this->http = new Http(rtrim($url, '/'), null, Client::DEFAULT_TIMEOUT);
    }

    /** license.api activates a key other than the host's before it answers (as the closed daemon did). */
    public function licenseXml(string $key): SimpleXMLElement
    {
        $xml = simplexml_load_string(urldecode((string) $this->call('getlicenseinfo', ['key' => $key])['result']));
        if ($xml === false) {
            throw new Error(Error::BAD_ANSWER, 'Failed to get license info: the agent answered no license XML',
                null, 502);
        }
        return $xml;
    }

    public function trial(array $form): string
    {
        return (string) $this->call('gettrial', $form + ['description' => '', 'product' => '11'])['result'];
    }

    /** license.api itself leaves the active key as it is. */
    public function changeKey(string $key): void
    {
        $this->call('changekey', ['key' => $key]);
    }

    public function addTrial(int $product): void
    {
        $this->call('addtrial', ['product' => (string) $product]);
    }

    public function redeem(string $coupon): void
    {
        $this->call('activatecoupon', ['coupon' => $coupon]);
    }

    public function capture(int $feature): string
    {
        return (string) $this->call('capturefeature?feature=' . $feature)['session'];
    }

    public function available(int $feature): void
    {
        $this->call('featureavailable?feature=' . $feature);
    }

    public function release(int $feature, string $session): void
    {
        $this->call('releasefeature?' . http_build_query(['session' => $session, 'feature' => $feature]));
    }

    public function sendMetrics(string $key, array $fields): void
    {
        $this->call('sendmetrics', ['key' => $key] + $fields, Client::METRICS_TIMEOUT);
    }

    public function ping(): void
    {
        $this->call('ping');
    }

    /**
     * @param array<string, string> $fields sent form-encoded; none sends a POST without a body
     * @return array<string, mixed>
     */
    private function call(string $method, array $fields = [], ?float $timeout = null): array
    {
        $form = $fields === [] ? null : http_build_query($fields);
        $headers = $form === null ? [] : ['Content-Type' => 'application/x-www-form-urlencoded'];
        [$status, $raw] = $this->http->send('POST', '/license.api/' . $method, $form, $headers, $timeout);
        $answer = json_decode($raw, true);
        if ($status === 200 && is_array($answer)) {
            return $answer;
        }
        $text = is_array($answer) && is_string($answer['error'] ?? null) ? $answer['error'] : "HTTP {$status}";
        $serverCode = preg_match('/\((\d{4})\)/', $text, $found) === 1 ? (int) $found[1] : null;
        throw new Error('license_api', $text, $serverCode, $status);
    }
}

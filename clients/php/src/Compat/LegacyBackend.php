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
    private const TIMEOUT = 30.0;
    private const CHANGE_FAILED = 'Failed to change license key: ';
    private const SEAT_FAILED = 'Failed to capture feature 33, ';

    private readonly Http $http;

    /** @param string $url the listener, e.g. http://127.0.0.1:8223 */
    public function __construct(string $url)
    {
        $this->http = new Http(rtrim($url, '/'), null, self::TIMEOUT);
    }

    public function licenseXml(string $key): SimpleXMLElement
    {
        try {
            $answer = $this->call('getlicenseinfo', ['key' => $key]);
        } catch (Error $e) {
            if ($key === '' || $e->status !== 409) {
                throw $e;
            }
            $this->activate($key); // 409: not the host's number yet
            $answer = $this->call('getlicenseinfo', ['key' => $key]);
        }
        $xml = simplexml_load_string(urldecode((string) $answer['result']));
        if ($xml === false) {
            throw new Error(Error::BAD_ANSWER, 'Failed to get license info: the agent answered no license XML', null, 502);
        }
        return $xml;
    }

    public function trial(array $form): string
    {
        return (string) $this->call('gettrial', $form + ['description' => '', 'product' => '11'])['result'];
    }

    public function changeKey(string $key): void
    {
        if ($key === '' || !$this->isCurrent($key)) {
            $this->call('changekey', ['key' => $key]);
        }
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

    /** license.api repeats the key only to a caller that names the host's own number. */
    private function isCurrent(string $key): bool
    {
        try {
            $this->call('getlicenseinfo', ['key' => $key]);
            return true;
        } catch (Error $e) {
            if ($e->status !== 409) {
                throw $e;
            }
            return false;
        }
    }

    /** Taking a new key takes the host's seat, and says so as the PBX expects from getLicenseInfo. */
    private function activate(string $key): void
    {
        try {
            $this->call('changekey', ['key' => $key]);
        } catch (Error $e) {
            $text = $e->getMessage();
            $reason = str_starts_with($text, self::CHANGE_FAILED) ? substr($text, strlen(self::CHANGE_FAILED)) : $text;
            throw new Error($e->getCode(), self::SEAT_FAILED . $reason, $e->serverCode, $e->status);
        }
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

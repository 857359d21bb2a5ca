<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * The agent's JSON API on its Unix socket (docs/api.md), one method per endpoint.
 *
 * Reads are answered by any peer that can connect; changes need root or a member of `[api] admin_groups`
 * (else Error `forbidden`). Every method throws Error on failure and waits at most `timeout` seconds.
 * Ids may be given as ints or numeric strings.
 */
final class Client
{
    public const DEFAULT_SOCKET = '/run/mikolicd.sock';
    public const SOCKET_ENV = 'MIKOLICD_SOCKET';
    /** Changes may wait for the licensing server, which the agent itself retries for a while. */
    public const DEFAULT_TIMEOUT = 30.0;
    /** Metrics are queued by the agent; nothing is worth waiting for. */
    public const METRICS_TIMEOUT = 3.0;

    private readonly Http $http;

    /** @param string|null $socket null: the environment's MIKOLICD_SOCKET, else /run/mikolicd.sock */
    public function __construct(?string $socket = null, float $timeout = self::DEFAULT_TIMEOUT)
    {
        $this->http = new Http('http://localhost', $socket ?? self::defaultSocket(), $timeout);
    }

    public static function defaultSocket(): string
    {
        $fromEnv = getenv(self::SOCKET_ENV);
        return is_string($fromEnv) && $fromEnv !== '' ? $fromEnv : self::DEFAULT_SOCKET;
    }

    public function socket(): string
    {
        return $this->http->where();
    }

    /** @return array{ok: bool, state: string, pid: int, config: string} */
    public function health(): array
    {
        return $this->call('GET', '/v1/health');
    }

    public function status(): Status
    {
        return Status::of($this->call('GET', '/v1/status'));
    }

    public function license(): LicenseInfo
    {
        return LicenseInfo::of($this->call('GET', '/v1/license'));
    }

    public function feature(int|string $id): FeatureStatus
    {
        return FeatureStatus::of($this->call('GET', '/v1/features/' . self::id($id)));
    }

    /**
     * @return array{components: list<array{name: string, strength: string, status: string, reason: ?string}>,
     *               holds: ?bool, bound: bool, degraded: bool, note: ?string}
     */
    public function fingerprint(): array
    {
        return $this->call('GET', '/v1/fingerprint');
    }

    /** A 30-day trial for this host (state `trial`); `tel` and `inn` (10-12 digits) are optional. */
    public function registerTrial(string $companyname, string $email, string $contact, string $tel = '',
                                  string $inn = '', string $description = ''): Status
    {
        $form = compact('companyname', 'email', 'contact', 'tel', 'inn', 'description');
        return Status::of($this->call('POST', '/v1/registration', array_filter($form, fn ($v) => $v !== '')));
    }

    /** Forget the registration number, releasing the seat first when it is held: state `unlicensed`. */
    public function forgetRegistration(): Status
    {
        return Status::of($this->call('DELETE', '/v1/registration'));
    }

    /** Activate a number on this host; another number while one is active needs `replace` (its seat is released). */
    public function activate(string $registrationNumber, bool $replace = false): Status
    {
        $body = ['registration_number' => $registrationNumber] + ($replace ? ['replace' => true] : []);
        return Status::of($this->call('POST', '/v1/activation', $body));
    }

    /** Give this host's seat back; the number stays (state `pending`). */
    public function release(): Status
    {
        return Status::of($this->call('DELETE', '/v1/activation'));
    }

    public function redeemCoupon(string $coupon): Redeemed
    {
        return Redeemed::of($this->call('POST', '/v1/coupons', ['coupon' => $coupon]));
    }

    public function validate(): Status
    {
        return Status::of($this->call('POST', '/v1/validation', []));
    }

    /** A 30-day trial of another product (a PBX module) on the current number. */
    public function addProductTrial(int|string $product): Status
    {
        return Status::of($this->call('POST', '/v1/products/' . self::id($product) . '/trial', []));
    }

    /** Take a seat of a feature; for 33 (the MikoPBX seat) the session is the activation's. */
    public function capture(int|string $feature): Capture
    {
        return Capture::of($this->call('POST', '/v1/features/' . self::id($feature) . '/captures', []));
    }

    /**
     * Give a captured seat back; for the seat feature's session this releases the activation.
     *
     * @return array{released: bool, feature: int, state: string}
     */
    public function releaseCapture(int|string $feature, string $session): array
    {
        return $this->call('DELETE', '/v1/features/' . self::id($feature) . '/captures/' . rawurlencode($session));
    }

    /**
     * Usage metrics, forwarded by the agent in the background at most once a day.
     *
     * @param array<string, mixed> $fields sent as text (see MetricFields)
     * @return bool whether these figures will be sent (false: already sent today)
     */
    public function sendMetrics(array $fields): bool
    {
        $body = ['fields' => (object) MetricFields::text($fields)];
        return (bool) $this->call('POST', '/v1/metrics', $body, self::METRICS_TIMEOUT)['queued'];
    }

    public function server(): ServerCheck
    {
        return ServerCheck::of($this->call('GET', '/v1/server'));
    }

    /** This host's offline activation request; only the latest one can be applied. */
    public function offlineRequest(): SignedCode
    {
        return SignedCode::of($this->call('GET', '/v1/offline/request'), 'request');
    }

    /** Apply an offline response (the signed text or its code) made elsewhere. */
    public function applyOfflineResponse(string $response): Status
    {
        return Status::of($this->call('POST', '/v1/offline/response', ['response' => $response]));
    }

    /** Drop the license without a network; the receipt frees the seat at the licensing server. */
    public function offlineRelease(): SignedCode
    {
        return SignedCode::of($this->call('POST', '/v1/offline/release', []), 'receipt');
    }

    /** `GET /metrics`: OpenMetrics text for Prometheus. */
    public function metrics(): string
    {
        [$status, $body] = $this->http->send('GET', '/metrics');
        if ($status !== 200) {
            throw self::failure($status, $body);
        }
        return $body;
    }

    /**
     * @param array<string, mixed>|null $body null sends no body; an array is sent as a JSON object
     * @return array<string, mixed>
     */
    private function call(string $method, string $path, ?array $body = null, ?float $timeout = null): array
    {
        $json = $body === null ? null
            : json_encode((object) $body, JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR);
        $headers = $json === null ? [] : ['Content-Type' => 'application/json'];
        [$status, $raw] = $this->http->send($method, $path, $json, $headers, $timeout);
        $answer = json_decode($raw, true);
        if ($status >= 200 && $status < 300 && is_array($answer)) {
            return $answer;
        }
        throw self::failure($status, $raw);
    }

    private static function failure(int $status, string $raw): Error
    {
        $error = json_decode($raw, true)['error'] ?? null;
        if (!is_array($error) || !isset($error['code'], $error['message'])) {
            return new Error(Error::BAD_ANSWER, "the agent answered HTTP {$status} without an error the API describes",
                null, $status);
        }
        $serverCode = isset($error['server_code']) ? (int) $error['server_code'] : null;
        return new Error((string) $error['code'], (string) $error['message'], $serverCode, $status);
    }

    /** Ids arrive as ints or numeric strings from callers without strict types; anything else is refused here. */
    public static function id(int|string $id): int
    {
        $text = trim((string) $id);
        if (!ctype_digit($text) || strlen($text) > 9) {
            throw new Error('invalid_input', "an id must be a number such as 33, not '" . substr($text, 0, 20) . "'",
                null, 400);
        }
        return (int) $text;
    }
}

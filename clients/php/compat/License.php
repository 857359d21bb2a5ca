<?php

declare(strict_types=1);

namespace MikoPBX\Service;

use Mikolicd\Client;
use Mikolicd\Compat\Backend;
use Mikolicd\Compat\JsonBackend;
use Mikolicd\Compat\LegacyBackend;
use Mikolicd\Compat\PbxModules;
use Mikolicd\Error;
use Mikolicd\MetricFields;

/**
 * The open MikoPBX\Service\License: the methods, arguments and answers the PBX's PHP code relies on,
 * served by mikolicd. Over the agent's Unix socket it uses the JSON API; given http://HOST:PORT it speaks
 * license.api to the agent's TCP listener. Ids and keys may come as ints or strings.
 *
 * Error texts name what failed and carry the licensing server's number in parentheses
 * ("Failed to capture feature 33, (2008) No free license features seat. ..."): the PBX translates by it.
 */
class License
{
    public const MIKOPBX_PRODUCT_ID = 11;
    public const MIKOPBX_FEATURE = 33;

    private const DISABLED_BY_LICENSE = 'DisabledByLicense';
    private const TRANSLATOR = 'MikoPBX\Common\Providers\TranslationProvider';
    /** The PBX's message for each server number, in the order they are looked for. */
    private const MESSAGE_KEYS = [
        2041 => 'lic_FailedActivateCoupon2041',
        2040 => 'lic_FailedActivateCoupon2040',
        2057 => 'lic_FailedActivateCoupon2057',
        2037 => 'lic_FailedActivateCoupon2037',
        2051 => 'lic_FailedToGetTrialKey2051',
        2022 => 'lic_FailedToGetTrialKey2022',
        2008 => 'lic_FailedToCaptureFeature2008',
        2009 => 'lic_InvalidLicenseKey2009',
        2011 => 'lic_FeatureExpired2011',
    ];
    private const UNKNOWN_MESSAGE = 'lic_UnknownLicenseMessage';

    private readonly Backend $backend;
    /** @var array<int, string> the capture session of each feature this object took */
    private array $sessions = [];

    /** @param string|null $endpoint a socket path, http://127.0.0.1:8223 for license.api over TCP, or null */
    public function __construct(?string $endpoint = null)
    {
        $this->backend = $endpoint !== null && preg_match('#^https?://#i', $endpoint) === 1
            ? new LegacyBackend($endpoint)
            : new JsonBackend(new Client($endpoint));
    }

    /**
     * The license for `$key`; a key other than the agent's number is activated on this host first.
     *
     * @return array{success: bool, result: ?\SimpleXMLElement, error: string, code: int} `code` is the HTTP
     *         status: 0 when the agent cannot be reached, 400 for a malformed key, 5xx when the server failed
     */
    public function getLicenseInfo(int|string $key): array
    {
        try {
            $xml = $this->backend->licenseXml(self::normal($key));
            return ['success' => true, 'result' => $xml, 'error' => '', 'code' => 200];
        } catch (Error $e) {
            return ['success' => false, 'result' => null, 'error' => $e->getMessage(), 'code' => $e->status];
        }
    }

    /**
     * A 30-day trial from the PBX's form (companyname, email, contact, telefone, inn; others are ignored).
     *
     * @param array<string, mixed> $params
     * @return string the new registration number, else the error text
     */
    public function getTrialLicense(array $params): string
    {
        $form = [];
        foreach (['companyname' => 'companyname', 'email' => 'email', 'contact' => 'contact', 'tel' => 'telefone',
                  'inn' => 'inn'] as $name => $pbxName) {
            $form[$name] = trim((string) ($params[$pbxName] ?? $params[$name] ?? ''));
        }
        return $this->orMessage(fn (): string => $this->backend->trial($form));
    }

    /** Switch the agent to `$key`; the agent's own number changes nothing, '' forgets the number. */
    public function changeLicenseKey(int|string $key): void
    {
        $this->orMessage(fn () => $this->backend->changeKey(self::normal($key)));
    }

    /**
     * A 30-day trial of a product (a module, or 11) on the current number.
     *
     * @return true|string true, else the error text
     */
    public function addTrial(int|string $productId): bool|string
    {
        return $this->orMessage(function () use ($productId): bool {
            $this->backend->addTrial(Client::id($productId));
            return true;
        });
    }

    /**
     * Redeem a coupon on the current number.
     *
     * @return true|string exactly true, else the error text
     */
    public function activateCoupon(int|string $coupon): bool|string
    {
        return $this->orMessage(function () use ($coupon): bool {
            $this->backend->redeem(self::normal($coupon));
            return true;
        });
    }

    /**
     * Take a seat of a feature of the license; this object keeps the session for releaseFeature.
     *
     * @return array{success: bool, error: string}
     */
    public function captureFeature(int|string $featureId): array
    {
        return $this->outcome(function () use ($featureId): void {
            $feature = Client::id($featureId);
            $this->requireInLicense($feature);
            $this->sessions[$feature] = $this->backend->capture($feature);
        });
    }

    /**
     * Whether the license lets the PBX use the feature now; takes no seat, answered offline too.
     *
     * @return array{success: bool, error: string}
     */
    public function featureAvailable(int|string $featureId): array
    {
        return $this->outcome(fn () => $this->backend->available(Client::id($featureId)));
    }

    /**
     * Give back the seat this object captured; for 33 that releases the host's activation.
     *
     * @return array{success: bool, error: string}
     */
    public function releaseFeature(int|string $featureId): array
    {
        return $this->outcome(function () use ($featureId): void {
            $feature = Client::id($featureId);
            if (!isset($this->sessions[$feature])) {
                throw new Error('unknown_session', "Failed to release feature {$feature}: it was not captured here");
            }
            $this->backend->release($feature, $this->sessions[$feature]);
            unset($this->sessions[$feature]);
        });
    }

    /**
     * Whether the licensing server answers now (the agent asks it at most once a second).
     *
     * @return array{success: bool, error?: string} ['success' => true], else with the reason
     */
    public function ping(): array
    {
        $outcome = $this->outcome(fn () => $this->backend->ping());
        return $outcome['success'] ? ['success' => true] : $outcome;
    }

    /**
     * Usage figures for the licensing server, queued by the agent (sent at most once a day); returns at
     * once whatever happens.
     *
     * @param array<string, mixed> $params
     */
    public function sendLicenseMetrics(int|string $key, array $params): void
    {
        $this->orMessage(fn () => $this->backend->sendMetrics(self::normal($key), MetricFields::text($params)));
    }

    /**
     * The PBX's own message for a licensing error: the first server number found, in a fixed order,
     * through the PBX's translation when it is loaded (else its key); other texts are answered as they are.
     */
    public function translateLicenseErrorMessage(string $message): string
    {
        if (trim($message) === '') {
            return self::translate(self::UNKNOWN_MESSAGE);
        }
        foreach (self::MESSAGE_KEYS as $number => $key) {
            if (preg_match("/(?<!\\d){$number}(?!\\d)/", $message) === 1) {
                return self::translate($key);
            }
        }
        return $message;
    }

    /** The hourly check of the PBX's own seat: a lost one is written to the system log. */
    public function checkPBX(): void
    {
        $outcome = $this->featureAvailable(self::MIKOPBX_FEATURE);
        if ($outcome['success'] === false) {
            syslog(LOG_WARNING, 'mikolicd: MikoPBX is not licensed on this host: ' . $outcome['error']);
        }
    }

    /**
     * Disable each enabled module whose licensed feature is not available, with reason DisabledByLicense and
     * the agent's error text (the PBX translates it when it shows the module list).
     *
     * @param array<string, int|string>|null $modules enabled modules' `lic_feature_id` by unique id; null reads
     *        the PBX's own list
     * @param null|callable(string $uniqid, string $reason, string $reasonText): void $disable null disables
     *        through the PBX's module processor
     */
    public function checkModules(?array $modules = null, ?callable $disable = null): void
    {
        $pbx = new PbxModules();
        $disable ??= $pbx->disable(...);
        foreach ($modules ?? $pbx->enabled() as $uniqid => $featureId) {
            if ((int) $featureId <= 0) {
                continue;
            }
            $outcome = $this->featureAvailable($featureId);
            if ($outcome['success'] === false) {
                $disable((string) $uniqid, self::DISABLED_BY_LICENSE, $outcome['error']);
            }
        }
    }

    /**
     * A seat is asked for only of a feature the license has (a module's, before its trial, has none): the
     * server refuses the others with 2008, which the agent takes as the host's seat being lost.
     */
    private function requireInLicense(int $feature): void
    {
        if (!$this->backend->licenseXml('')->xpath("/license/product/feature[@id='{$feature}']")) {
            throw new Error('not_in_license',
                "Failed to capture feature {$feature}, it is not in the license of this host");
        }
    }

    private static function normal(int|string $text): string
    {
        return strtoupper(trim((string) $text));
    }

    private static function translate(string $key): string
    {
        return class_exists(self::TRANSLATOR) ? (string) [self::TRANSLATOR, 'translate']($key) : $key;
    }

    /**
     * Run `$call`; a failure answers its text instead, as the PBX's true-or-text answers expect.
     *
     * @template T
     * @param callable(): T $call
     * @return T|string
     */
    private function orMessage(callable $call): mixed
    {
        try {
            return $call();
        } catch (Error $e) {
            return $e->getMessage();
        }
    }

    /** @return array{success: bool, error: string} */
    private function outcome(callable $call): array
    {
        try {
            $call();
            return ['success' => true, 'error' => ''];
        } catch (Error $e) {
            return ['success' => false, 'error' => $e->getMessage()];
        }
    }
}

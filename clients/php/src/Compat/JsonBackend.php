<?php

declare(strict_types=1);

namespace Mikolicd\Compat;

use Closure;
use Mikolicd\Client;
use Mikolicd\Error;
use Mikolicd\Status;
use SimpleXMLElement;

/** @internal The License class over the agent's JSON API, with the legacy daemon's error texts. */
final class JsonBackend implements Backend
{
    private const PBX_SEAT = 33;
    private const NUMBER = '/^MIKO(-[A-Z0-9]{5}){4}$/';

    public function __construct(private readonly Client $client)
    {
    }

    public function licenseXml(string $key): SimpleXMLElement
    {
        if ($key !== '' && $this->statusOf($key) === null) {
            self::attempt('Failed to capture feature ' . self::PBX_SEAT . ', ',
                fn () => $this->client->activate($key, true));
        }
        $license = self::attempt('Failed to get license info: ', fn () => $this->client->license());
        return LicenseXml::of($license, $key !== '' ? $key : $license->registrationNumber);
    }

    public function trial(array $form): string
    {
        $status = self::attempt('Failed to get trial key: ', fn () => $this->client->registerTrial(
            $form['companyname'], $form['email'], $form['contact'], $form['tel'], $form['inn']));
        $number = (string) $status->registrationNumber;
        if (preg_match(self::NUMBER, $number) !== 1) {
            throw new Error(Error::BAD_ANSWER, 'Failed to get trial key: the agent registered the trial but did not '
                . 'answer its registration number in full', null, 502);
        }
        return $number;
    }

    public function changeKey(string $key): void
    {
        if ($key === '') {
            self::attempt('Failed to change license key: ', fn () => $this->client->forgetRegistration());
            return;
        }
        $status = $this->statusOf($key);
        if ($status === null || $status->state === 'pending') { // another number, or this one's seat released
            self::attempt('Failed to change license key: ', fn () => $this->client->activate($key, true));
        }
    }

    public function addTrial(int $product): void
    {
        self::attempt("Failed to add trial of product {$product}: ", fn () => $this->client->addProductTrial($product));
    }

    public function redeem(string $coupon): void
    {
        self::attempt('Failed to activate coupon: ', fn () => $this->client->redeemCoupon($coupon));
    }

    public function capture(int $feature): string
    {
        return self::attempt("Failed to capture feature {$feature}, ", fn () => $this->client->capture($feature))
            ->session;
    }

    public function available(int $feature): void
    {
        $status = self::attempt("Feature {$feature} is not available: ", fn () => $this->client->feature($feature));
        if (!$status->available) {
            throw new Error('not_available', "Feature {$feature} is not available: {$status->reason}", null, 403);
        }
    }

    public function release(int $feature, string $session): void
    {
        self::attempt("Failed to release feature {$feature}: ",
            fn () => $this->client->releaseCapture($feature, $session));
    }

    public function sendMetrics(string $key, array $fields): void
    {
        $this->client->sendMetrics($fields);
    }

    public function ping(): void
    {
        $check = self::attempt('Licensing server does not answer: ', fn () => $this->client->server());
        if (!$check->reachable) {
            throw new Error('server_unreachable', "Licensing server does not answer: {$check->message}", null, 503);
        }
    }

    /**
     * The agent's status when `$key` is its number, else null. The agent shows its number masked
     * (MIKO-7KQ2P-*****-*****-*****): a key that masks the same way is taken for it.
     */
    private function statusOf(string $key): ?Status
    {
        if (preg_match(self::NUMBER, $key) !== 1) {
            return null;
        }
        $status = $this->client->status();
        return $status->registrationNumber === substr($key, 0, 10) . '-*****-*****-*****' ? $status : null;
    }

    /**
     * @template T
     * @param Closure(): T $call
     * @return T
     */
    private static function attempt(string $doing, Closure $call): mixed
    {
        try {
            return $call();
        } catch (Error $e) {
            throw $e->after($doing);
        }
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd\Compat;

use Mikolicd\Error;
use SimpleXMLElement;

/**
 * @internal What MikoPBX\Service\License asks the agent, over the JSON API or over license.api.
 *
 * Every method throws Error whose message is the whole text the PBX shows: what failed, then the reason
 * with the licensing server's number in parentheses ("Failed to activate coupon: (2041) ...").
 */
interface Backend
{
    /** The license as the PBX parses it, after activating `$key` when it is not the agent's number. */
    public function licenseXml(string $key): SimpleXMLElement;

    /**
     * @param array{companyname: string, email: string, contact: string, tel: string, inn: string} $form
     * @return string the new registration number
     */
    public function trial(array $form): string;

    /** Switch to `$key` (nothing when it is already the agent's); '' forgets the number. */
    public function changeKey(string $key): void;

    public function addTrial(int $product): void;

    public function redeem(string $coupon): void;

    /** @return string the capture session */
    public function capture(int $feature): string;

    /** Returns when the feature may be used; throws why not. */
    public function available(int $feature): void;

    public function release(int $feature, string $session): void;

    /** @param array<string, string> $fields */
    public function sendMetrics(string $key, array $fields): void;

    /** Returns when the licensing server answers; throws why not. */
    public function ping(): void;
}

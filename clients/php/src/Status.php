<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * `GET /v1/status`, also the answer of every change. `state` is one of unlicensed, pending, active, trial,
 * grace, expired, invalid; `registrationNumber` is masked (MIKO-7KQ2P-*****-*****-*****) or null; the times
 * are ISO 8601 or null. `data` is the whole answer, for what has no property here (fingerprint, warnings, ...).
 */
final readonly class Status
{
    /**
     * @param list<Product> $products
     * @param array<string, mixed> $data
     */
    public function __construct(
        public string $state,
        public string $reason,
        public ?string $registrationNumber,
        public array $products,
        public ?string $nextValidation,
        public ?string $graceUntil,
        public ?string $offlineUntil,
        public array $data,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((string) $data['state'], (string) ($data['reason'] ?? ''),
            $data['registration_number'] ?? null, Product::list($data['products'] ?? []),
            $data['next_validation'] ?? null, $data['grace_until'] ?? null, $data['offline_until'] ?? null, $data);
    }

    /** Whether the PBX may use its licensed features now. */
    public function usable(): bool
    {
        return in_array($this->state, ['active', 'trial', 'grace'], true);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * `GET /v1/license`: the license this host holds. `registrationNumber` is masked; `issuedAt` and
 * `offlineUntil` are Unix times; `offline` says it came from an offline activation.
 */
final readonly class LicenseInfo
{
    /**
     * @param array{companyname: string, contact: string, email: string, tel: string} $owner
     * @param list<Product> $products
     */
    public function __construct(
        public string $registrationNumber,
        public string $licenseId,
        public array $owner,
        public int $issuedAt,
        public int $offlineUntil,
        public bool $offline,
        public array $products,
        public string $state,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        $owner = [];
        foreach (['companyname', 'contact', 'email', 'tel'] as $name) {
            $owner[$name] = (string) ($data['owner'][$name] ?? '');
        }
        return new self((string) $data['registration_number'], (string) $data['license_id'], $owner,
            (int) $data['issued_at'], (int) $data['offline_until'], (bool) ($data['offline'] ?? false),
            Product::list($data['products']), (string) $data['state']);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * `POST /v1/coupons`: the new status and what the coupon changed, per product: its expiry `before` and
 * `after` (YYYY-MM-DD, null = termless).
 */
final readonly class Redeemed
{
    /** @param list<array{product: int, name: string, before: ?string, after: ?string}> $changed */
    public function __construct(
        public Status $status,
        public array $changed,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self(Status::of($data), array_values($data['changed'] ?? []));
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/** `GET /v1/features/{id}`, judged from the local license (works offline). `reason` says why it is (not) available. */
final readonly class FeatureStatus
{
    public function __construct(
        public int $id,
        public bool $available,
        public string $reason,
        public ?string $expires,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((int) $data['id'], (bool) $data['available'], (string) ($data['reason'] ?? ''),
            isset($data['expires']) ? (string) $data['expires'] : null);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * A feature of a product. `license()` fills the seat counts (`counteach`, `captured`), `status()` fills
 * `available`; each leaves the others null.
 */
final readonly class Feature
{
    public function __construct(
        public int $id,
        public string $name,
        public int $count,
        public ?int $counteach = null,
        public ?int $captured = null,
        public ?bool $available = null,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((int) $data['id'], (string) $data['name'], (int) $data['count'],
            isset($data['counteach']) ? (int) $data['counteach'] : null,
            isset($data['captured']) ? (int) $data['captured'] : null,
            isset($data['available']) ? (bool) $data['available'] : null);
    }
}

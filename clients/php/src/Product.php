<?php

declare(strict_types=1);

namespace Mikolicd;

/** A licensed product: 11 is MikoPBX, others are PBX modules. `expires` is YYYY-MM-DD, null when termless. */
final readonly class Product
{
    /** @param list<Feature> $features */
    public function __construct(
        public int $id,
        public string $name,
        public bool $trial,
        public ?string $expires,
        public array $features,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((int) $data['id'], (string) $data['name'], (bool) $data['trial'],
            isset($data['expires']) ? (string) $data['expires'] : null,
            array_map(Feature::of(...), $data['features'] ?? []));
    }

    /**
     * @param list<array<string, mixed>> $products
     * @return list<self>
     */
    public static function list(array $products): array
    {
        return array_map(self::of(...), $products);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/** A seat of a feature held by this host; `session` gives it back (`Client::releaseCapture`). */
final readonly class Capture
{
    public function __construct(
        public string $session,
        public int $feature,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((string) $data['session'], (int) $data['feature']);
    }
}

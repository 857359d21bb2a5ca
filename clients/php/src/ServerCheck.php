<?php

declare(strict_types=1);

namespace Mikolicd;

/** `GET /v1/server`: does the licensing server answer now. `serverTime` is ISO 8601, null when it did not answer. */
final readonly class ServerCheck
{
    public function __construct(
        public bool $reachable,
        public string $message,
        public ?string $serverTime,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data): self
    {
        return new self((bool) $data['reachable'], (string) ($data['message'] ?? ''),
            isset($data['server_time']) ? (string) $data['server_time'] : null);
    }
}

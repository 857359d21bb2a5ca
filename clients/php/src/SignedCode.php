<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * An offline activation request or release receipt: the signed text (`jws`) and the same as a code to type
 * or paste (`code`, blocks with a checksum).
 */
final readonly class SignedCode
{
    public function __construct(
        public string $jws,
        public string $code,
    ) {
    }

    /** @param array<string, mixed> $data */
    public static function of(array $data, string $field): self
    {
        return new self((string) $data[$field], (string) $data['code']);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/** @internal Usage metrics travel as text: numbers and flags as they print, lists and maps as JSON. */
final class MetricFields
{
    /**
     * @param array<string, mixed> $fields
     * @return array<string, string>
     */
    public static function text(array $fields): array
    {
        $text = [];
        foreach ($fields as $name => $value) {
            $text[(string) $name] = match (true) {
                is_bool($value) => $value ? '1' : '0',
                is_scalar($value), $value === null => (string) $value,
                default => (string) json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES),
            };
        }
        return $text;
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * @internal Usage metrics travel as text: numbers and flags as they print, lists and maps as JSON, each
 * name and text cut to what the agent accepts.
 */
final class MetricFields
{
    public const MAX_FIELDS = 64;
    public const MAX_TEXT = 256;

    /**
     * @param array<string, mixed> $fields
     * @return array<string, string>
     */
    public static function text(array $fields): array
    {
        $text = [];
        foreach (array_slice($fields, 0, self::MAX_FIELDS, true) as $name => $value) {
            $text[self::cut((string) $name)] = self::cut(match (true) {
                is_bool($value) => $value ? '1' : '0',
                is_scalar($value), $value === null => (string) $value,
                default => (string) json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES
                    | JSON_INVALID_UTF8_SUBSTITUTE),
            });
        }
        return $text;
    }

    /** At most MAX_TEXT characters (bytes, when the text is not UTF-8). */
    private static function cut(string $text): string
    {
        return preg_match('/^.{0,' . self::MAX_TEXT . '}/us', $text, $head) === 1 ? $head[0]
            : substr($text, 0, self::MAX_TEXT);
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Client;
use RuntimeException;

/**
 * What tests/test_php_client.py started for these tests, found through the environment, and the reference
 * server's admin commands (new registration numbers and coupons).
 */
final class Agents
{
    /** The one trial company of every host: asking again on the same host answers the same number. */
    public const TRIAL = ['companyname' => 'Romashka LLC', 'email' => 'owner@romashka.example',
                          'contact' => 'Anna Admin', 'telefone' => '+7 495 000-00-00', 'inn' => '7701234567'];
    public const OTHER_TRIAL = ['companyname' => 'Other LLC', 'email' => 'it@other.example', 'contact' => 'Oleg'];

    public static function env(string $name): string
    {
        $value = getenv($name);
        if (!is_string($value) || $value === '') {
            throw new RuntimeException("{$name} is not set: run these tests through tests/test_php_client.py");
        }
        return $value;
    }

    /** The PBX's own agent, on the Unix socket. */
    public static function pbx(): Client
    {
        return new Client(self::env('MIKOLICD_SOCKET'));
    }

    /** Another host, which takes a seat before this one. */
    public static function otherHost(): Client
    {
        return new Client(self::env('MIKOLICD_TEST_OTHER_SOCKET'));
    }

    /** @param string ...$options e.g. '--seats', '2' */
    public static function issue(string ...$options): string
    {
        return self::server('issue', ...$options);
    }

    public static function coupon(string ...$options): string
    {
        return self::server('coupon', ...$options);
    }

    public static function server(string $command, string ...$args): string
    {
        $line = implode(' ', array_map('escapeshellarg',
            [self::env('MIKOLIC_SERVER'), $command, '--dir', self::env('MIKOLIC_SERVER_DIR'), ...$args]));
        exec($line . ' 2>&1', $output, $status);
        if ($status !== 0) {
            throw new RuntimeException("mikolic-server {$command} exited {$status}: " . implode("\n", $output));
        }
        return trim(implode("\n", $output));
    }
}

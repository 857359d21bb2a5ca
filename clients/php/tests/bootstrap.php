<?php

declare(strict_types=1);

/*
 * The package's own PSR-4 map (composer.json), so the tests run with the distribution's phpunit and no
 * Composer install.
 */
$composer = json_decode((string) file_get_contents(dirname(__DIR__) . '/composer.json'), true, 512,
    JSON_THROW_ON_ERROR);
$prefixes = $composer['autoload']['psr-4'] + $composer['autoload-dev']['psr-4'];
uksort($prefixes, fn (string $a, string $b): int => strlen($b) <=> strlen($a)); // Mikolicd\Tests\ before Mikolicd\

spl_autoload_register(static function (string $class) use ($prefixes): void {
    foreach ($prefixes as $prefix => $dir) {
        if (str_starts_with($class, $prefix)) {
            $file = dirname(__DIR__) . '/' . $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
            return;
        }
    }
});

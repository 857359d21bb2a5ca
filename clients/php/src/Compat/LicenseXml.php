<?php

declare(strict_types=1);

namespace Mikolicd\Compat;

use Mikolicd\LicenseInfo;
use SimpleXMLElement;

/**
 * @internal The license in the XML the PBX has always parsed:
 * <license companyname contact email tel key><product id name trial expired><feature id name count
 * counteach captured/></product></license>
 */
final class LicenseXml
{
    /** Characters XML 1.0 cannot carry; SimpleXML would refuse the whole document. */
    private const NOT_XML = '/[^\x{9}\x{A}\x{D}\x{20}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]/u';

    public static function of(LicenseInfo $license, string $key): SimpleXMLElement
    {
        $root = new SimpleXMLElement('<license/>');
        foreach ($license->owner as $name => $value) {
            $root->addAttribute($name, self::text($value));
        }
        $root->addAttribute('key', $key);
        foreach ($license->products as $product) {
            $node = $root->addChild('product');
            self::attributes($node, ['id' => $product->id, 'name' => $product->name,
                'trial' => $product->trial ? 1 : 0, 'expired' => $product->expires ?? '']);
            foreach ($product->features as $feature) {
                self::attributes($node->addChild('feature'), ['id' => $feature->id, 'name' => $feature->name,
                    'count' => $feature->count, 'counteach' => $feature->counteach ?? 0,
                    'captured' => $feature->captured ?? 0]);
            }
        }
        return $root;
    }

    /** @param array<string, int|string> $values */
    private static function attributes(SimpleXMLElement $node, array $values): void
    {
        foreach ($values as $name => $value) {
            $node->addAttribute($name, self::text((string) $value));
        }
    }

    /** The agent's text is valid UTF-8 (JSON); addAttribute escapes markup; what XML cannot hold is left out. */
    private static function text(string $value): string
    {
        return (string) preg_replace(self::NOT_XML, '', $value);
    }
}

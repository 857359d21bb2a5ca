<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Compat\LicenseXml;
use Mikolicd\LicenseInfo;
use PHPUnit\Framework\TestCase;

/** The license XML built from the JSON API's license, as the PBX parses it. */
final class LicenseXmlTest extends TestCase
{
    private static function license(string $company, ?string $expires): LicenseInfo
    {
        $seat = ['id' => 33, 'name' => 'MikoPBX', 'count' => 5, 'counteach' => 0, 'captured' => 2];
        return LicenseInfo::of([
            'registration_number' => 'MIKO-AB12C-*****-*****-*****', 'license_id' => 'l-1', 'issued_at' => 1,
            'offline_until' => 2, 'state' => 'active',
            'owner' => ['companyname' => $company, 'contact' => 'Ann', 'email' => 'a@example.test', 'tel' => '+7 1'],
            'products' => [['id' => 11, 'name' => 'MikoPBX', 'trial' => $expires !== null, 'expires' => $expires,
                'features' => [$seat]]],
        ]);
    }

    public function testProductsAndFeaturesAreElementsWithTheirAttributes(): void
    {
        $xml = LicenseXml::of(self::license('Example LLC', '2026-03-01'), 'MIKO-AB12C-DE34F-GH56J-KL78M');
        self::assertSame(
            '<license companyname="Example LLC" contact="Ann" email="a@example.test" tel="+7 1" '
            . 'key="MIKO-AB12C-DE34F-GH56J-KL78M">'
            . '<product id="11" name="MikoPBX" trial="1" expired="2026-03-01">'
            . '<feature id="33" name="MikoPBX" count="5" counteach="0" captured="2"/></product></license>',
            trim(preg_replace('/^<\?xml[^>]*>/', '', $xml->asXML())));
    }

    public function testATermlessProductHasAnEmptyExpiry(): void
    {
        $product = LicenseXml::of(self::license('Example LLC', null), 'k')->product[0];
        self::assertSame(['0', ''], [(string) $product['trial'], (string) $product['expired']]);
    }

    public function testMarkupIsEscapedAndCharactersXmlCannotCarryAreLeftOut(): void
    {
        $xml = LicenseXml::of(self::license("A & B <\"C\">\x07", null), 'k');
        self::assertSame('A & B <"C">', (string) simplexml_load_string($xml->asXML())['companyname']);
    }
}

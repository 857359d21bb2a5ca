<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use MikoPBX\Service\License;
use PHPUnit\Framework\TestCase;

/** translateLicenseErrorMessage: the PBX's message key for the first server number found, in a fixed order. */
final class TranslationTest extends TestCase
{
    private License $license;

    protected function setUp(): void
    {
        $this->license = new License('/nonexistent/mikolicd.sock'); // translation never asks the agent
    }

    /** @return array<string, array{string, string}> */
    public static function messages(): array
    {
        return [
            'coupon used' => ['(2041) Coupon already activated', 'lic_FailedActivateCoupon2041'],
            'coupon unknown' => ['(2040) Coupon does not exist', 'lic_FailedActivateCoupon2040'],
            'coupon blocked' => ['(2057) Coupon blocked', 'lic_FailedActivateCoupon2057'],
            'coupon error' => ['(2037) Coupon error', 'lic_FailedActivateCoupon2037'],
            'trial taken' => ['Failed to get trial key: (2051) Trial already issued', 'lic_FailedToGetTrialKey2051'],
            'trial email used' => ['(2022) Trial refused', 'lic_FailedToGetTrialKey2022'],
            'no free seat' => ['Failed to capture feature 33, (2008) No free seat', 'lic_FailedToCaptureFeature2008'],
            'key error' => ['(2009) License key error', 'lic_InvalidLicenseKey2009'],
            'feature expired' => ['(2011) License feature expired', 'lic_FeatureExpired2011'],
        ];
    }

    /** @dataProvider messages */
    public function testEachServerNumberHasItsMessageKey(string $message, string $key): void
    {
        self::assertSame($key, $this->license->translateLicenseErrorMessage($message));
    }

    public function testTheEarlierNumberInTheOrderWinsWhateverItsPlaceInTheText(): void
    {
        $message = 'Failed to capture feature 33, (2008) No free seat; then (2041) Coupon already activated';
        self::assertSame('lic_FailedActivateCoupon2041', $this->license->translateLicenseErrorMessage($message));
    }

    public function testTrialNumbersComeBeforeTheSeatNumber(): void
    {
        self::assertSame('lic_FailedToGetTrialKey2051',
            $this->license->translateLicenseErrorMessage('(2008) seat taken, (2051) trial taken'));
    }

    public function testANumberInsideALongerNumberDoesNotCount(): void
    {
        self::assertSame('order 120081 failed', $this->license->translateLicenseErrorMessage('order 120081 failed'));
    }

    public function testAnEmptyMessageIsTheUnknownMessage(): void
    {
        self::assertSame('lic_UnknownLicenseMessage', $this->license->translateLicenseErrorMessage('  '));
    }

    public function testAnyOtherTextIsAnsweredAsItIs(): void
    {
        $message = 'Failed to change license key: (2026) Invalid registration number';
        self::assertSame($message, $this->license->translateLicenseErrorMessage($message));
    }

    /** @runInSeparateProcess */
    public function testTheKeyGoesThroughThePbxTranslationWhenItIsLoaded(): void
    {
        require __DIR__ . '/fixtures/TranslationProvider.php';
        self::assertSame('[ru] lic_FailedActivateCoupon2040',
            $this->license->translateLicenseErrorMessage('(2040) Coupon does not exist'));
        self::assertSame('[ru] lic_UnknownLicenseMessage', $this->license->translateLicenseErrorMessage(''));
    }
}

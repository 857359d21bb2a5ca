<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Client;
use MikoPBX\Service\License;
use PHPUnit\Framework\TestCase;
use SimpleXMLElement;

/**
 * MikoPBX\Service\License as the PBX's code calls it (values as ints and strings, results compared with ===),
 * against the real agent and licensing server. Each transport's test class runs all of these.
 */
abstract class LicenseContract extends TestCase
{
    /** The class under test, on this transport. */
    abstract protected function license(): License;

    /** The same agent over its socket, to arrange and look behind the class. */
    abstract protected function agent(): Client;

    /** The class on this transport with no agent behind it. */
    abstract protected function withoutAgent(): License;

    /** A fresh number, activated here: what most PBX flows start from. */
    protected function activeKey(string ...$options): string
    {
        $key = Agents::issue(...$options);
        $this->agent()->activate($key, true);
        return $key;
    }

    // ------------------------------------------------------------------ getLicenseInfo
    public function testLicenseInfoOfTheActiveKeyIsItsXml(): void
    {
        $key = $this->activeKey();
        $info = $this->license()->getLicenseInfo($key);
        self::assertSame(['success', 'result', 'error', 'code'], array_keys($info));
        self::assertSame([true, '', 200], [$info['success'], $info['error'], $info['code']]);
        self::assertInstanceOf(SimpleXMLElement::class, $info['result']);
        self::assertSame($key, (string) $info['result']['key']);
        self::assertSame($key, json_decode(json_encode($info['result']->attributes()), true)['@attributes']['key']);
        $seat = $info['result']->xpath('/license/product[@id="11"]/feature[@id="33"]')[0];
        self::assertSame(['33', 'MikoPBX', '1', '0', '1'], array_map(fn ($name) => (string) $seat[$name],
            ['id', 'name', 'count', 'counteach', 'captured']));
    }

    public function testLicenseInfoOfANewKeyActivatesItFirst(): void
    {
        $this->activeKey();
        $new = Agents::issue();
        $info = $this->license()->getLicenseInfo(" {$new} ");
        self::assertTrue($info['success'], $info['error']);
        self::assertSame($new, (string) $info['result']['key']);
        self::assertSame(substr($new, 0, 10) . '-*****-*****-*****', $this->agent()->status()->registrationNumber);
        self::assertSame('active', $this->agent()->status()->state);
    }

    public function testLicenseInfoOfAKeyBoundToAnotherHostIs2008(): void
    {
        $key = Agents::issue('--seats', '1');
        Agents::otherHost()->activate($key, true);
        $info = $this->license()->getLicenseInfo($key);
        self::assertFalse($info['success']);
        self::assertStringStartsWith('Failed to capture feature 33, (2008) ', $info['error']);
        self::assertSame(409, $info['code']);
        self::assertSame('lic_FailedToCaptureFeature2008',
            $this->license()->translateLicenseErrorMessage($info['error']));
    }

    public function testLicenseInfoOfAMalformedKeyIsCode400(): void
    {
        $info = $this->license()->getLicenseInfo('MIKO-TYPO');
        self::assertSame([false, 400], [$info['success'], $info['code']]);
    }

    public function testLicenseInfoWithoutTheAgentIsCode0(): void
    {
        $info = $this->withoutAgent()->getLicenseInfo(Agents::issue());
        self::assertSame([false, null, 0], [$info['success'], $info['result'], $info['code']]);
        self::assertNotSame('', $info['error']);
    }

    // ------------------------------------------------------------------ trial, key, coupon
    public function testTrialAnswersTheNewNumberIn28Characters(): void
    {
        $this->license()->changeLicenseKey('');
        $number = $this->license()->getTrialLicense(Agents::TRIAL + ['licKey' => '', 'coupon' => '']);
        self::assertMatchesRegularExpression('/^MIKO(-[A-Z0-9]{5}){4}$/', $number);
        self::assertSame(28, strlen($number));
        self::assertSame('trial', $this->agent()->status()->state);
    }

    public function testASecondTrialOnThisHostForAnotherCompanyIs2051(): void
    {
        $this->license()->changeLicenseKey('');
        $this->license()->getTrialLicense(Agents::TRIAL); // this host's one trial
        $this->license()->changeLicenseKey('');
        $answer = $this->license()->getTrialLicense(Agents::OTHER_TRIAL);
        self::assertStringContainsString('(2051)', $answer);
        self::assertSame('lic_FailedToGetTrialKey2051', $this->license()->translateLicenseErrorMessage($answer));
    }

    public function testChangingToTheActiveKeyChangesNothing(): void
    {
        $key = $this->activeKey();
        $before = $this->agent()->license();
        sleep(1); // a new document would carry a later issue time
        self::assertNull($this->license()->changeLicenseKey($key));
        self::assertEquals($before, $this->agent()->license());
    }

    public function testChangingToAnotherKeyActivatesIt(): void
    {
        $this->activeKey();
        $key = Agents::issue();
        $this->license()->changeLicenseKey($key);
        self::assertSame(substr($key, 0, 10) . '-*****-*****-*****', $this->agent()->status()->registrationNumber);
    }

    public function testChangingToAnEmptyKeyForgetsTheNumber(): void
    {
        $this->activeKey();
        $this->license()->changeLicenseKey('');
        self::assertSame(['unlicensed', null], [$this->agent()->status()->state,
            $this->agent()->status()->registrationNumber]);
    }

    public function testACouponAnswersExactlyTrue(): void
    {
        $this->activeKey('--days', '30');
        self::assertTrue($this->license()->activateCoupon(Agents::coupon('--termless')));
        $pbx = $this->license()->getLicenseInfo('')['result']->xpath('/license/product[@id="11"]')[0];
        self::assertSame(['0', ''], [(string) $pbx['trial'], (string) $pbx['expired']]);
    }

    public function testAUsedCouponIs2041(): void
    {
        $this->activeKey();
        $coupon = Agents::coupon();
        $this->license()->activateCoupon($coupon);
        $answer = $this->license()->activateCoupon($coupon);
        self::assertIsString($answer);
        self::assertStringContainsString('(2041)', $answer);
        self::assertStringNotContainsString($coupon, $answer);
    }

    public function testAnUnknownCouponIs2040(): void
    {
        $this->activeKey();
        $answer = $this->license()->activateCoupon('MIKOUPD-NOSUC-HCOUP-ON000-00000');
        self::assertIsString($answer);
        self::assertStringContainsString('(2040)', $answer);
    }

    // ------------------------------------------------------------------ modules and seats
    public function testAModuleTrialAnswersTrueAndShowsTheModule(): void
    {
        $this->activeKey();
        self::assertTrue($this->license()->addTrial('1001'));
        $module = $this->license()->getLicenseInfo('')['result']->xpath('/license/product[@id="1001"]')[0];
        self::assertSame('1', (string) $module['trial']);
    }

    public function testAModuleTrialWithoutANumberAnswersTheReason(): void
    {
        $this->license()->changeLicenseKey('');
        self::assertIsString($this->license()->addTrial(1001));
    }

    public function testAModuleIsCapturedAfterItsTrialAsTheInstallerDoes(): void
    {
        $this->activeKey();
        $license = $this->license();
        self::assertFalse($license->captureFeature(1002)['success']);
        $license->addTrial(1002);
        self::assertSame(['success' => true, 'error' => ''], $license->captureFeature('1002'));
        self::assertSame(['success' => true, 'error' => ''], $license->releaseFeature(1002));
    }

    public function testCapturingAFeatureOutsideTheLicenseFailsAndKeepsTheLicense(): void
    {
        $this->activeKey();
        $refused = 'Failed to capture feature 4242, it is not in the license of this host';
        self::assertSame(['success' => false, 'error' => $refused], $this->license()->captureFeature(4242));
        self::assertSame('active', $this->agent()->status()->state);
    }

    public function testReleaseWithoutACaptureFailsWithAReason(): void
    {
        $this->activeKey();
        $answer = $this->license()->releaseFeature(33);
        self::assertFalse($answer['success']);
        self::assertStringContainsString('33', $answer['error']);
    }

    public function testReleasingTheSeatLeavesFeature33Unavailable(): void
    {
        $this->activeKey();
        $license = $this->license();
        self::assertSame(['success' => true, 'error' => ''], $license->captureFeature(33));
        self::assertSame(['success' => true, 'error' => ''], $license->releaseFeature('33'));
        $after = $license->featureAvailable(33);
        self::assertFalse($after['success']);
        self::assertStringStartsWith('Feature 33 is not available: ', $after['error']);
        self::assertSame('pending', $this->agent()->status()->state);
    }

    public function testAFeatureOfTheLicenseIsAvailable(): void
    {
        $this->activeKey();
        self::assertSame(['success' => true, 'error' => ''], $this->license()->featureAvailable('33'));
    }

    public function testAFeatureOutsideTheLicenseIsNotAvailable(): void
    {
        $this->activeKey();
        $answer = $this->license()->featureAvailable(4242);
        self::assertSame(false, $answer['success']);
        self::assertStringStartsWith('Feature 4242 is not available: ', $answer['error']);
    }

    public function testModulesWhoseFeatureIsNotAvailableAreDisabledByLicense(): void
    {
        $this->activeKey();
        $this->license()->addTrial(1003);
        $disabled = [];
        $this->license()->checkModules(['ModuleLicensed' => 1003, 'ModuleUnlicensed' => '4242', 'ModuleFree' => 0],
            function (string $uniqid, string $reason, string $text) use (&$disabled): void {
                $disabled[] = [$uniqid, $reason, $text];
            });
        self::assertCount(1, $disabled);
        self::assertSame(['ModuleUnlicensed', 'DisabledByLicense'], array_slice($disabled[0], 0, 2));
        self::assertStringStartsWith('Feature 4242 is not available: ', $disabled[0][2]);
    }

    public function testModulesAreNotCheckedOutsideThePbxWithoutAList(): void
    {
        $this->activeKey();
        $this->license()->checkModules(null, fn () => self::fail('nothing to disable'));
        self::assertFalse(class_exists('MikoPBX\Common\Models\PbxExtensionModules'));
    }

    public function testTheHourlyPbxCheckAnswersNothing(): void
    {
        $this->activeKey();
        self::assertNull($this->license()->checkPBX());
        $this->license()->changeLicenseKey('');
        self::assertNull($this->license()->checkPBX());
    }

    // ------------------------------------------------------------------ ping and metrics
    public function testPingAnswersSuccessTrue(): void
    {
        self::assertSame(['success' => true], $this->license()->ping());
    }

    public function testPingWithoutTheAgentAnswersSuccessFalse(): void
    {
        self::assertFalse($this->withoutAgent()->ping()['success']);
    }

    public function testMetricsAsThePbxSendsThemReturnAtOnce(): void
    {
        $key = $this->activeKey();
        $started = microtime(true);
        self::assertNull($this->license()->sendLicenseMetrics($key, ['PBXname' => 'MikoPBX@2025.1.1',
            'CountSipExtensions' => 12, 'Hypervisor' => 'KVM', 'DMI' => ['vendor' => 'Miko']]));
        self::assertLessThan(Client::METRICS_TIMEOUT, microtime(true) - $started);
    }

    public function testMetricsWithoutTheAgentReturnAtOnce(): void
    {
        $started = microtime(true);
        self::assertNull($this->withoutAgent()->sendLicenseMetrics('', ['PBXname' => 'x']));
        self::assertLessThan(Client::METRICS_TIMEOUT, microtime(true) - $started);
    }
}

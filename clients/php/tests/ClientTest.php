<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Capture;
use Mikolicd\Client;
use Mikolicd\Error;
use Mikolicd\Feature;
use Mikolicd\LicenseInfo;
use Mikolicd\Product;
use Mikolicd\Status;
use PHPUnit\Framework\TestCase;

/** Mikolicd\Client: each JSON API call against the real agent and licensing server. */
final class ClientTest extends TestCase
{
    private Client $client;

    protected function setUp(): void
    {
        $this->client = Agents::pbx();
    }

    private function activeKey(string ...$options): string
    {
        $key = Agents::issue(...$options);
        $this->client->activate($key, true);
        return $key;
    }

    private static function masked(string $key): string
    {
        return substr($key, 0, 10) . '-*****-*****-*****';
    }

    private function refusal(callable $call): Error
    {
        try {
            $call();
        } catch (Error $e) {
            return $e;
        }
        self::fail('the agent did not refuse');
    }

    public function testTheSocketComesFromTheEnvironmentWhenNoneIsGiven(): void
    {
        self::assertSame(Agents::env('MIKOLICD_SOCKET'), (new Client())->socket());
    }

    public function testHealthSaysOkWithThePidAndConfig(): void
    {
        $health = $this->client->health();
        self::assertTrue($health['ok']);
        self::assertIsInt($health['pid']);
        self::assertStringEndsWith('mikolicd.toml', $health['config']);
    }

    public function testActivationAnswersTheActiveStatusWithTheNumberMasked(): void
    {
        $key = Agents::issue();
        $status = $this->client->activate($key, true);
        self::assertInstanceOf(Status::class, $status);
        self::assertSame(['active', self::masked($key)], [$status->state, $status->registrationNumber]);
        self::assertTrue($status->usable());
        [$pbx] = array_values(array_filter($status->products, fn (Product $p) => $p->id === 11));
        self::assertEquals([new Feature(33, 'MikoPBX', 1, null, null, true)], $pbx->features);
    }

    public function testAnotherNumberWhileOneIsActiveNeedsReplace(): void
    {
        $this->activeKey();
        $error = $this->refusal(fn () => $this->client->activate(Agents::issue()));
        self::assertSame(['number_active', 409], [$error->getCode(), $error->status]);
    }

    public function testAMalformedNumberIsRefusedWithoutAskingTheServer(): void
    {
        $error = $this->refusal(fn () => $this->client->activate('MIKO-TYPO'));
        self::assertSame(['invalid_registration_number', 400, null],
            [$error->getCode(), $error->status, $error->serverCode]);
    }

    public function testANumberBoundToAnotherHostIs2008(): void
    {
        $key = Agents::issue('--seats', '1');
        Agents::otherHost()->activate($key, true);
        $error = $this->refusal(fn () => $this->client->activate($key, true));
        self::assertSame(['server_refused', 409, 2008], [$error->getCode(), $error->status, $error->serverCode]);
        self::assertStringStartsWith('(2008) ', $error->getMessage());
    }

    public function testTheLicenseHasItsOwnerProductsAndSeatCounts(): void
    {
        $key = $this->activeKey();
        $license = $this->client->license();
        self::assertInstanceOf(LicenseInfo::class, $license);
        self::assertSame([self::masked($key), 'active', false],
            [$license->registrationNumber, $license->state, $license->offline]);
        self::assertSame(['companyname', 'contact', 'email', 'tel'], array_keys($license->owner));
        self::assertGreaterThan($license->issuedAt, $license->offlineUntil);
        [$pbx] = array_values(array_filter($license->products, fn (Product $p) => $p->id === 11));
        self::assertEquals([new Feature(33, 'MikoPBX', 1, 0, 1)], $pbx->features);
    }

    public function testWithoutALicenseTheLicenseIsNoLicense(): void
    {
        $this->client->forgetRegistration();
        $error = $this->refusal(fn () => $this->client->license());
        self::assertSame(['no_license', 404], [$error->getCode(), $error->status]);
    }

    public function testAFeatureIsJudgedFromTheLocalLicense(): void
    {
        $this->activeKey();
        $seat = $this->client->feature('33');
        self::assertSame([33, true], [$seat->id, $seat->available]);
        self::assertFalse($this->client->feature(4242)->available);
    }

    public function testAFeatureIdMustBeANumber(): void
    {
        $error = $this->refusal(fn () => $this->client->feature('33; drop'));
        self::assertSame(['invalid_input', 400], [$error->getCode(), $error->status]);
    }

    public function testTheFingerprintListsComponentsWithTheirStatus(): void
    {
        $this->activeKey();
        $fingerprint = $this->client->fingerprint();
        self::assertTrue($fingerprint['bound']);
        foreach ($fingerprint['components'] as $component) {
            self::assertSame(['name', 'strength', 'status', 'reason'], array_keys($component));
        }
    }

    public function testATrialIsRegisteredOnAHostWithoutALicense(): void
    {
        $this->client->forgetRegistration();
        $trial = Agents::TRIAL;
        $status = $this->client->registerTrial($trial['companyname'], $trial['email'], $trial['contact'],
            $trial['telefone'], $trial['inn']);
        self::assertSame('trial', $status->state);
    }

    public function testForgettingTheNumberLeavesTheHostUnlicensed(): void
    {
        $this->activeKey();
        $status = $this->client->forgetRegistration();
        self::assertSame(['unlicensed', null], [$status->state, $status->registrationNumber]);
    }

    public function testReleasingTheSeatKeepsTheNumber(): void
    {
        $key = $this->activeKey();
        $status = $this->client->release();
        self::assertSame(['pending', self::masked($key)], [$status->state, $status->registrationNumber]);
        self::assertFalse($this->client->feature(33)->available);
    }

    public function testACouponSaysWhatItChanged(): void
    {
        $this->activeKey('--days', '30');
        $redeemed = $this->client->redeemCoupon(Agents::coupon('--termless'));
        self::assertSame('active', $redeemed->status->state);
        [$change] = array_values(array_filter($redeemed->changed, fn (array $c) => $c['product'] === 11));
        self::assertNotNull($change['before']);
        self::assertNull($change['after']);
    }

    public function testACouponWorksOnce(): void
    {
        $this->activeKey();
        $coupon = Agents::coupon();
        $this->client->redeemCoupon($coupon);
        $error = $this->refusal(fn () => $this->client->redeemCoupon($coupon));
        self::assertSame(['server_refused', 2041], [$error->getCode(), $error->serverCode]);
    }

    public function testAnUnknownCouponIs2040(): void
    {
        $this->activeKey();
        $error = $this->refusal(fn () => $this->client->redeemCoupon('MIKOUPD-NOSUC-HCOUP-ON000-00000'));
        self::assertSame(['server_refused', 2040], [$error->getCode(), $error->serverCode]);
    }

    public function testValidationAnswersTheNewStatus(): void
    {
        $this->activeKey();
        self::assertSame('active', $this->client->validate()->state);
    }

    public function testAProductTrialAddsTheModule(): void
    {
        $this->activeKey();
        $status = $this->client->addProductTrial('1011');
        [$module] = array_values(array_filter($status->products, fn (Product $p) => $p->id === 1011));
        self::assertTrue($module->trial);
        self::assertNotNull($module->expires);
    }

    public function testAModuleSeatIsCapturedAndGivenBack(): void
    {
        $this->activeKey();
        $this->client->addProductTrial(1012);
        $capture = $this->client->capture(1012);
        self::assertInstanceOf(Capture::class, $capture);
        self::assertSame(1012, $capture->feature);
        self::assertSame(['released' => true, 'feature' => 1012, 'state' => 'active'],
            $this->client->releaseCapture(1012, $capture->session));
    }

    public function testAnUnknownSessionIsNotFound(): void
    {
        $this->activeKey();
        $error = $this->refusal(fn () => $this->client->releaseCapture(33, 'no-such-session'));
        self::assertSame(['unknown_session', 404], [$error->getCode(), $error->status]);
    }

    public function testTheSeatsSessionIsTheActivationAndGivingItBackReleasesIt(): void
    {
        $this->activeKey();
        $capture = $this->client->capture(33);
        self::assertSame($capture->session, $this->client->capture(33)->session);
        $released = $this->client->releaseCapture(33, $capture->session);
        self::assertSame([true, 'pending'], [$released['released'], $released['state']]);
        self::assertFalse($this->client->feature(33)->available);
    }

    public function testMetricsAreQueuedAtMostOnceADay(): void
    {
        $this->activeKey();
        self::assertTrue($this->client->sendMetrics(['PBXname' => 'office', 'CountSipExtensions' => 12]));
        self::assertFalse($this->client->sendMetrics(['PBXname' => 'office', 'CountSipExtensions' => 12]));
    }

    public function testTheServerIsReachable(): void
    {
        $check = $this->client->server();
        self::assertTrue($check->reachable);
        self::assertNotSame('', $check->message);
    }

    public function testOpenMetricsTextEndsWithEof(): void
    {
        self::assertStringEndsWith("# EOF\n", $this->client->metrics());
    }

    public function testAnOfflineResponseMadeElsewhereActivatesThisHost(): void
    {
        $key = Agents::issue();
        $this->client->forgetRegistration();
        $this->client->activate($key);
        $request = $this->client->offlineRequest();
        self::assertNotSame('', $request->code);
        $file = tempnam(sys_get_temp_dir(), 'offline-request-');
        file_put_contents($file, $request->jws);
        try {
            $response = Agents::server('offline', 'answer', $file);
        } finally {
            unlink($file);
        }
        self::assertSame('active', $this->client->applyOfflineResponse($response)->state);
    }

    public function testAnOfflineReleaseAnswersASignedReceipt(): void
    {
        $this->activeKey();
        $receipt = $this->client->offlineRelease();
        self::assertSame(3, count(explode('.', $receipt->jws)));
        self::assertNotSame('', $receipt->code);
    }

    public function testAStoppedAgentIsUnreachable(): void
    {
        $error = $this->refusal(fn () => (new Client(Agents::env('MIKOLICD_TEST_STOPPED_SOCKET')))->status());
        self::assertSame(['unreachable', 0, null], [$error->getCode(), $error->status, $error->serverCode]);
    }
}

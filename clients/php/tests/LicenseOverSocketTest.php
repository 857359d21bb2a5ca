<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Client;
use MikoPBX\Service\License;

/** The License class on the agent's Unix socket (the JSON API), built as the PBX builds it: new License(). */
final class LicenseOverSocketTest extends LicenseContract
{
    protected function license(): License
    {
        return new License();
    }

    protected function agent(): Client
    {
        return Agents::pbx();
    }

    protected function withoutAgent(): License
    {
        return new License(Agents::env('MIKOLICD_TEST_STOPPED_SOCKET'));
    }

    public function testTheConstantsAreMikoPbxAndItsSeat(): void
    {
        self::assertSame([11, 33], [License::MIKOPBX_PRODUCT_ID, License::MIKOPBX_FEATURE]);
    }

    public function testAnExplicitSocketPathIsUsed(): void
    {
        $this->activeKey();
        $license = new License(Agents::env('MIKOLICD_SOCKET'));
        self::assertSame(['success' => true, 'error' => ''], $license->featureAvailable(33));
    }

    public function testTheModuleInstallersLowercaseAddtrialIsTheSameMethod(): void
    {
        $this->activeKey();
        self::assertTrue($this->license()->addtrial(1005));
    }

    /** @runInSeparateProcess */
    public function testInsideThePbxModulesAreReadAndDisabledThroughItsOwnClasses(): void
    {
        require __DIR__ . '/fixtures/PbxModuleClasses.php';
        $dir = sys_get_temp_dir() . '/pbx-modules-' . getmypid();
        foreach (['ModuleLicensed' => 1006, 'ModuleUnlicensed' => 4242, 'ModuleFree' => null] as $uniqid => $feature) {
            mkdir("{$dir}/{$uniqid}", 0700, true);
            $description = array_filter(['lic_feature_id' => $feature]);
            file_put_contents("{$dir}/{$uniqid}/module.json", json_encode($description));
        }
        \MikoPBX\Modules\PbxExtensionUtils::$modulesDir = $dir;
        \MikoPBX\Common\Models\PbxExtensionModules::$enabled = ['ModuleFree', 'ModuleLicensed', 'ModuleUnlicensed'];
        $this->activeKey();
        $this->license()->addTrial(1006);
        try {
            $this->license()->checkModules();
        } finally {
            exec('rm -rf ' . escapeshellarg($dir));
        }
        $disabled = \MikoPBX\PBXCoreREST\Lib\Modules\DisableModuleAction::$disabled;
        self::assertSame([['ModuleUnlicensed', 'DisabledByLicense']],
            array_map(fn (array $call): array => array_slice($call, 0, 2), $disabled));
        self::assertStringStartsWith('Feature 4242 is not available: ', $disabled[0][2]);
    }
}

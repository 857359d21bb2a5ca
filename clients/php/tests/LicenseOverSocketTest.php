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
}

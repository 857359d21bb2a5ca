<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\Client;
use MikoPBX\Service\License;

/** The License class on the legacy TCP listener (license.api), built as the PBX's own tests build it. */
final class LicenseOverTcpTest extends LicenseContract
{
    protected function license(): License
    {
        return new License(Agents::env('MIKOLICD_TEST_TCP'));
    }

    protected function agent(): Client
    {
        return new Client(Agents::env('MIKOLICD_TEST_TCP_SOCKET'));
    }

    protected function withoutAgent(): License
    {
        return new License(Agents::env('MIKOLICD_TEST_CLOSED_TCP'));
    }
}

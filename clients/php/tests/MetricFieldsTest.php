<?php

declare(strict_types=1);

namespace Mikolicd\Tests;

use Mikolicd\MetricFields;
use PHPUnit\Framework\TestCase;

/** Metrics as the PBX collects them (numbers, flags, arrays) become the texts the agent forwards. */
final class MetricFieldsTest extends TestCase
{
    public function testNumbersFlagsAndNullsAreTheirText(): void
    {
        self::assertSame(['CountSipExtensions' => '12', 'Docker' => '1', 'Sentry' => '0', 'Empty' => ''],
            MetricFields::text(['CountSipExtensions' => 12, 'Docker' => true, 'Sentry' => false, 'Empty' => null]));
    }

    public function testArraysAreJson(): void
    {
        self::assertSame(['DMI' => '{"vendor":"Miko","serial":"ä/1"}'],
            MetricFields::text(['DMI' => ['vendor' => 'Miko', 'serial' => 'ä/1']]));
    }

    public function testLongTextsAreCutToWhatTheAgentAcceptsByCharacter(): void
    {
        $text = MetricFields::text(['PBXname' => str_repeat('ё', MetricFields::MAX_TEXT + 10)])['PBXname'];
        self::assertSame(str_repeat('ё', MetricFields::MAX_TEXT), $text);
    }

    public function testAtMostAsManyFieldsAsTheAgentAccepts(): void
    {
        self::assertCount(MetricFields::MAX_FIELDS, MetricFields::text(array_fill_keys(range(1, 100), 'x')));
    }
}

<?php

declare(strict_types=1);

namespace Mikolicd\Compat;

use LogicException;

/**
 * @internal The PBX's installed modules, read and disabled through the PBX's own classes (when this runs
 * inside MikoPBX; elsewhere there are none).
 */
final class PbxModules
{
    private const MODULES = 'MikoPBX\Common\Models\PbxExtensionModules';
    private const UTILS = 'MikoPBX\Modules\PbxExtensionUtils';
    private const DISABLE = 'MikoPBX\PBXCoreREST\Lib\Modules\DisableModuleAction';

    public static function present(): bool
    {
        return class_exists(self::MODULES) && class_exists(self::UTILS) && class_exists(self::DISABLE);
    }

    /** @return array<string, int> the licensed feature (module.json `lic_feature_id`) of each enabled module */
    public function enabled(): array
    {
        if (!self::present()) {
            return [];
        }
        $features = [];
        foreach ([self::MODULES, 'getEnabledModulesArray'](false) as $module) {
            $uniqid = (string) $module['uniqid'];
            $json = @file_get_contents([self::UTILS, 'getModuleDir']($uniqid) . '/module.json');
            $description = is_string($json) ? json_decode($json, true) : null;
            $features[$uniqid] = (int) (is_array($description) ? ($description['lic_feature_id'] ?? 0) : 0);
        }
        return $features;
    }

    /** Disable as the admin's own "disable" does, keeping why. */
    public function disable(string $uniqid, string $reason, string $reasonText): void
    {
        if (!self::present()) {
            throw new LogicException('the MikoPBX module classes are not loaded: give checkModules a callable');
        }
        [self::DISABLE, 'main']($uniqid, $reason, $reasonText);
    }
}

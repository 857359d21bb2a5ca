<?php
declare(strict_types=1);

/*
 * Runs one LicenseApi call and prints its answer as JSON, for the Python tests.
 *
 *   php licensectl.php tcp HOST:PORT METHOD [name=value ...]
 *   php licensectl.php unix SOCKET METHOD [name=value ...]
 */

require __DIR__ . '/LicenseApi.php';

[, $transport, $where, $method] = $argv;
$fields = [];
foreach (array_slice($argv, 4) as $argument) {
    [$name, $value] = explode('=', $argument, 2);
    $fields[$name] = $value;
}
$api = $transport === 'unix' ? new LicenseApi('http://localhost', $where) : new LicenseApi("http://{$where}");

$answer = match ($method) {
    'getlicenseinfo' => $api->getLicenseInfo($fields['key'] ?? ''),
    'gettrial' => $api->getTrialLicense($fields),
    'changekey' => $api->changeLicenseKey($fields['key'] ?? ''),
    'addtrial' => $api->addTrial((int) $fields['product']),
    'activatecoupon' => $api->activateCoupon($fields['coupon']),
    'capturefeature' => $api->captureFeature((int) $fields['feature']),
    'featureavailable' => $api->featureAvailable((int) $fields['feature']),
    'releasefeature' => $api->releaseFeature($fields['session'], (int) $fields['feature']),
    'sendmetrics' => $api->sendLicenseMetrics($fields['key'] ?? '', array_diff_key($fields, ['key' => true])),
    'ping' => $api->ping(),
};
echo json_encode($answer, JSON_UNESCAPED_UNICODE), "\n";

<?php
declare(strict_types=1);

/**
 * A license.api client written the way the PBX's own PHP code calls its licensing daemon:
 * curl with form fields, json_decode, urldecode and SimpleXML. If this works unchanged against
 * mikolicd, so does the PBX.
 *
 * Every call answers an array: ['success' => true, ...data] or
 * ['success' => false, 'status' => HTTP status, 'error' => text, 'code' => number found in the text].
 */
final class LicenseApi
{
    /** @param string|null $unixSocket talk HTTP over this Unix socket instead of TCP */
    public function __construct(private string $baseUrl, private ?string $unixSocket = null)
    {
    }

    public function getLicenseInfo(string $key): array
    {
        return $this->answer($this->post('getlicenseinfo', ['key' => $key]), fn (array $body): array => [
            'license' => self::license($body['result']),
        ]);
    }

    public function getTrialLicense(array $form): array
    {
        $form += ['product' => 11];
        return $this->answer($this->post('gettrial', $form), fn (array $body): array => [
            'key' => urldecode($body['result']),
        ]);
    }

    public function changeLicenseKey(string $key): array
    {
        return $this->answer($this->post('changekey', ['key' => $key]), fn (array $body): array => [
            'result' => $body['result'],
        ]);
    }

    public function addTrial(int $product): array
    {
        return $this->answer($this->post('addtrial', ['product' => $product]), fn (array $body): array => [
            'license' => self::license($body['result']),
        ]);
    }

    public function activateCoupon(string $coupon): array
    {
        return $this->answer($this->post('activatecoupon', ['coupon' => $coupon]), fn (array $body): array => [
            'license' => self::license($body['result']),
        ]);
    }

    /** Parameters in the query string and a POST without a body, as the PBX sends it. */
    public function captureFeature(int $feature): array
    {
        return $this->answer($this->post("capturefeature?feature={$feature}", null), fn (array $body): array => [
            'session' => $body['session'],
        ]);
    }

    /** Older PBX code asks this one with a plain GET. */
    public function featureAvailable(int $feature): array
    {
        return $this->answer($this->get("featureavailable?feature={$feature}"), fn (array $body): array => [
            'result' => $body['result'],
        ]);
    }

    public function releaseFeature(string $session, int $feature): array
    {
        $query = http_build_query(['session' => $session, 'feature' => $feature]);
        return $this->answer($this->post("releasefeature?{$query}", null), fn (array $body): array => [
            'result' => $body['result'],
        ]);
    }

    /** The metrics go as a field array, which curl sends as multipart/form-data. */
    public function sendLicenseMetrics(string $key, array $metrics): array
    {
        $response = $this->post('sendmetrics', ['key' => $key] + $metrics, false);
        return $this->answer($response, fn (array $body): array => $body);
    }

    public function ping(): array
    {
        return $this->answer($this->post('ping', null), fn (array $body): array => ['result' => $body['result']]);
    }

    /** The error number the PBX translates into its own text, looked up the way the PBX does it. */
    public static function errorCode(string $message): ?int
    {
        return preg_match('/\((\d{4})\)/', $message, $found) === 1 ? (int) $found[1] : null;
    }

    private static function license(string $encoded): array
    {
        $xml = simplexml_load_string(urldecode($encoded));
        if ($xml === false) {
            throw new UnexpectedValueException('the license.api result is not XML');
        }
        $products = [];
        foreach ($xml->product as $product) {
            $features = [];
            foreach ($product->feature as $feature) {
                $features[] = self::attributes($feature);
            }
            $products[] = self::attributes($product) + ['features' => $features];
        }
        return self::attributes($xml) + ['products' => $products];
    }

    private static function attributes(SimpleXMLElement $node): array
    {
        $values = [];
        foreach ($node->attributes() as $name => $value) {
            $values[$name] = (string) $value;
        }
        return $values;
    }

    private function answer(array $response, callable $success): array
    {
        [$status, $body] = $response;
        if ($status === 200 && is_array($body) && !isset($body['error'])) {
            return ['success' => true] + $success($body);
        }
        $error = is_array($body) && is_string($body['error'] ?? null) ? $body['error'] : "HTTP {$status}";
        return ['success' => false, 'status' => $status, 'error' => $error, 'code' => self::errorCode($error)];
    }

    private function get(string $path): array
    {
        return $this->request($path, []);
    }

    /** @param array|null $fields null sends a POST with an empty body */
    private function post(string $path, ?array $fields, bool $urlEncoded = true): array
    {
        $body = match (true) {
            $fields === null => '',
            $urlEncoded => http_build_query($fields),
            default => $fields,
        };
        return $this->request($path, [CURLOPT_POST => true, CURLOPT_POSTFIELDS => $body]);
    }

    private function request(string $path, array $options): array
    {
        $curl = curl_init("{$this->baseUrl}/license.api/{$path}");
        curl_setopt_array($curl, $options + [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 20]);
        if ($this->unixSocket !== null) {
            curl_setopt($curl, CURLOPT_UNIX_SOCKET_PATH, $this->unixSocket);
        }
        $raw = curl_exec($curl);
        if ($raw === false) {
            throw new RuntimeException('license.api unreachable: ' . curl_error($curl));
        }
        $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        curl_close($curl);
        return [$status, json_decode($raw, true)];
    }
}

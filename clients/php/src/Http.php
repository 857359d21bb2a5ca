<?php

declare(strict_types=1);

namespace Mikolicd;

/**
 * @internal One HTTP/1.1 exchange with curl, over a Unix socket or TCP, always within a time limit.
 */
final class Http
{
    public const CONNECT_TIMEOUT = 2.0;

    /**
     * @param string $baseUrl "http://localhost" for a socket, else the listener's "http://HOST:PORT"
     * @param string|null $socket the Unix socket to connect to instead of the URL's host
     */
    public function __construct(
        private readonly string $baseUrl,
        private readonly ?string $socket,
        private readonly float $timeout,
    ) {
    }

    public function where(): string
    {
        return $this->socket ?? $this->baseUrl;
    }

    /**
     * @param array<string, string> $headers
     * @return array{int, string} the HTTP status and the body
     * @throws Error `unreachable` when no answer arrived in time
     */
    public function send(string $method, string $path, ?string $body = null, array $headers = [],
                         ?float $timeout = null): array
    {
        $curl = curl_init($this->baseUrl . $path);
        $limit = $timeout ?? $this->timeout;
        $options = [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_CONNECTTIMEOUT_MS => (int) (min(self::CONNECT_TIMEOUT, $limit) * 1000),
            CURLOPT_TIMEOUT_MS => (int) ($limit * 1000),
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HTTPHEADER => array_map(fn (string $name, string $value): string => "{$name}: {$value}",
                array_keys($headers), $headers),
        ];
        if ($body !== null) {
            $options[CURLOPT_POSTFIELDS] = $body;
        }
        if ($this->socket !== null) {
            $options[CURLOPT_UNIX_SOCKET_PATH] = $this->socket;
        }
        curl_setopt_array($curl, $options);
        $answer = curl_exec($curl);
        if (!is_string($answer)) {
            throw new Error(Error::UNREACHABLE, "mikolicd is not reachable at {$this->where()}: " . curl_error($curl));
        }
        return [(int) curl_getinfo($curl, CURLINFO_RESPONSE_CODE), $answer];
    }
}

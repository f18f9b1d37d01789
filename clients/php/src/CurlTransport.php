<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * The default transport: one curl request per call, no redirects, TLS
 * verified. Any callable with the same signature can replace it (the
 * `transport` client option), e.g. to route through a framework's client.
 */
final class CurlTransport
{
    public function __construct(
        private readonly float $connectTimeout = 5.0,
        private readonly ?string $caBundle = null,
    ) {
    }

    /**
     * @param array<string, string> $headers
     * @throws NetworkError when no HTTP answer arrives
     */
    public function __invoke(string $method, string $url, array $headers, ?string $body, float $timeout): Response
    {
        $ch = curl_init();
        if ($ch === false) {
            throw new NetworkError('curl_init failed');
        }
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = $name . ': ' . $value;
        }
        $lines[] = 'Expect:'; // no 100-continue round trip for larger bodies
        $received = [];
        $options = [
            CURLOPT_URL => $url,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_NOSIGNAL => true, // sub-second timeouts
            CURLOPT_CONNECTTIMEOUT_MS => (int) ceil(min($this->connectTimeout, $timeout) * 1000),
            CURLOPT_TIMEOUT_MS => (int) ceil($timeout * 1000),
            CURLOPT_SSL_VERIFYPEER => true,
            CURLOPT_SSL_VERIFYHOST => 2,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_HEADERFUNCTION => static function ($ch, string $line) use (&$received): int {
                $len = strlen($line);
                if (preg_match('#^HTTP/\S+\s+\d{3}#', $line)) {
                    $received = []; // a new response (after a 1xx)
                } elseif (($colon = strpos($line, ':')) !== false) {
                    $name = strtolower(trim(substr($line, 0, $colon)));
                    $value = trim(substr($line, $colon + 1));
                    $received[$name] = isset($received[$name]) ? $received[$name] . ', ' . $value : $value;
                }
                return $len;
            },
        ];
        if ($method === 'HEAD') {
            $options[CURLOPT_NOBODY] = true;
        }
        if ($body !== null) {
            $options[CURLOPT_POSTFIELDS] = $body;
        }
        if ($this->caBundle !== null) {
            $options[CURLOPT_CAINFO] = $this->caBundle;
        }
        curl_setopt_array($ch, $options);
        $raw = curl_exec($ch);
        $errno = curl_errno($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        $error = curl_error($ch);
        curl_close($ch);
        if ($raw === false || $errno !== 0 || $status === 0) {
            throw new NetworkError(
                sprintf('%s %s: %s (curl %d)', $method, self::redact($url), $error !== '' ? $error : 'no answer', $errno),
                $errno === CURLE_OPERATION_TIMEDOUT,
            );
        }
        return new Response($status, $received, is_string($raw) ? $raw : '');
    }

    /** The URL without its query, which may hold an author's API parameters. */
    private static function redact(string $url): string
    {
        return explode('?', $url, 2)[0];
    }
}

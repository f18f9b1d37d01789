<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Standard Webhooks (https://www.standardwebhooks.com) verification for the
 * author's back office: `webhook-signature` holds space-separated
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` entries, keyed by the
 * base64 secret after `whsec_`; `webhook-timestamp` must be within five
 * minutes. Deliveries are at least once: deduplicate on the returned id.
 */
final class Webhook
{
    /** Seconds a delivery's timestamp may differ from now. */
    public const TOLERANCE = 300;

    /**
     * Verifies a delivery and returns its decoded JSON payload, with the
     * delivery id under `webhook_id` when the payload has none.
     *
     * @param array<string, string|list<string>> $headers any case; `HTTP_WEBHOOK_ID`-style
     *        $_SERVER keys and framework arrays of values are accepted
     * @param string $body the raw request body, byte for byte (php://input), not re-encoded JSON
     * @return array<string, mixed>
     * @throws WebhookVerificationFailed
     */
    public static function verify(array $headers, string $body, string $secret, ?int $now = null, int $tolerance = self::TOLERANCE): array
    {
        $h = self::normalize($headers);
        $id = $h['webhook-id'] ?? '';
        $timestamp = $h['webhook-timestamp'] ?? '';
        $signatures = $h['webhook-signature'] ?? '';
        if ($id === '' || $timestamp === '' || $signatures === '') {
            throw new WebhookVerificationFailed('missing webhook-id, webhook-timestamp or webhook-signature header');
        }
        if (!ctype_digit($timestamp)) {
            throw new WebhookVerificationFailed('webhook-timestamp is not a unix time');
        }
        $now ??= time();
        if (abs($now - (int) $timestamp) > $tolerance) {
            throw new WebhookVerificationFailed('webhook-timestamp is outside the tolerance');
        }
        $expected = self::signature($id, (int) $timestamp, $body, $secret);
        $ok = false;
        foreach (preg_split('/\s+/', trim($signatures)) ?: [] as $entry) {
            [$version, $sig] = array_pad(explode(',', $entry, 2), 2, '');
            // Compare every v1 entry (no early exit) in constant time.
            if ($version === 'v1' && hash_equals($expected, $sig)) {
                $ok = true;
            }
        }
        if (!$ok) {
            throw new WebhookVerificationFailed('no valid v1 signature');
        }
        try {
            $payload = json_decode($body, true, 64, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WebhookVerificationFailed('the payload is not JSON', 0, $e);
        }
        if (!is_array($payload)) {
            throw new WebhookVerificationFailed('the payload is not a JSON object');
        }
        $payload['webhook_id'] ??= $id;
        return $payload;
    }

    /** The `webhook-signature` header value for a delivery (for tests and re-signing proxies). */
    public static function sign(string $id, int $timestamp, string $body, string $secret): string
    {
        return 'v1,' . self::signature($id, $timestamp, $body, $secret);
    }

    private static function signature(string $id, int $timestamp, string $body, string $secret): string
    {
        $encoded = str_starts_with($secret, 'whsec_') ? substr($secret, 6) : $secret;
        $key = base64_decode($encoded, true);
        if ($key === false || $key === '') {
            throw new \InvalidArgumentException('webhook secret: expected whsec_<base64>');
        }
        return base64_encode(hash_hmac('sha256', $id . '.' . $timestamp . '.' . $body, $key, true));
    }

    /**
     * @param array<string, string|list<string>> $headers
     * @return array<string, string>
     */
    private static function normalize(array $headers): array
    {
        $out = [];
        foreach ($headers as $name => $value) {
            $name = strtolower((string) $name);
            if (str_starts_with($name, 'http_')) {
                $name = str_replace('_', '-', substr($name, 5));
            }
            if (is_array($value)) {
                $value = implode(' ', array_map('strval', $value));
            }
            $out[$name] = trim((string) $value);
        }
        return $out;
    }
}

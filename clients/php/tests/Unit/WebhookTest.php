<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Unit;

use LicenseGate\Webhook;
use LicenseGate\WebhookVerificationFailed;
use PHPUnit\Framework\TestCase;

/**
 * Known vectors computed outside this library:
 *  - the Standard Webhooks specification's example (secret, id, timestamp,
 *    payload and signature as published);
 *  - a licensegate-shaped delivery signed with
 *      KEYHEX=$(printf %s 'licensegate-test-secret-32-bytes!' | xxd -p -c 64)
 *      printf %s 'msg_lg_0001.1796118000.<body>' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEYHEX -binary | base64
 */
final class WebhookTest extends TestCase
{
    private const SPEC_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    private const SPEC_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
    private const SPEC_TS = 1614265330;
    private const SPEC_BODY = '{"test": 2432232314}';
    private const SPEC_SIG = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

    private const LG_SECRET = 'whsec_bGljZW5zZWdhdGUtdGVzdC1zZWNyZXQtMzItYnl0ZXMh';
    private const LG_ID = 'msg_lg_0001';
    private const LG_TS = 1796118000;
    private const LG_BODY = '{"type":"installation.created","timestamp":"2026-12-01T09:40:00Z","data":{"installation_id":"ins_1"}}';
    private const LG_SIG = 'v1,eTMfLhbdQGf1NvGrP6rhgJrVBa2MTOUzFCyRJZlacD4=';

    /** @return array<string, string> */
    private static function headers(string $id, int $ts, string $sig): array
    {
        return ['webhook-id' => $id, 'webhook-timestamp' => (string) $ts, 'webhook-signature' => $sig];
    }

    public function testTheSpecificationsExampleVerifies(): void
    {
        $payload = Webhook::verify(self::headers(self::SPEC_ID, self::SPEC_TS, self::SPEC_SIG), self::SPEC_BODY, self::SPEC_SECRET, self::SPEC_TS);
        $this->assertSame(2432232314, $payload['test']);
        $this->assertSame(self::SPEC_ID, $payload['webhook_id']);
        $this->assertSame(self::SPEC_SIG, Webhook::sign(self::SPEC_ID, self::SPEC_TS, self::SPEC_BODY, self::SPEC_SECRET));
    }

    public function testAnOpensslSignedDeliveryVerifies(): void
    {
        $payload = Webhook::verify(self::headers(self::LG_ID, self::LG_TS, self::LG_SIG), self::LG_BODY, self::LG_SECRET, self::LG_TS + 299);
        $this->assertSame('installation.created', $payload['type']);
        $this->assertSame('ins_1', $payload['data']['installation_id']);
    }

    public function testAnyOfSeveralSpaceSeparatedSignaturesMayMatch(): void
    {
        // Secret rotation: the old key's signature first, an unknown version, then the new one.
        $sig = 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,whatever ' . self::LG_SIG;
        $this->assertSame('installation.created', Webhook::verify(self::headers(self::LG_ID, self::LG_TS, $sig), self::LG_BODY, self::LG_SECRET, self::LG_TS)['type']);
    }

    public function testServerStyleAndFrameworkStyleHeadersAreAccepted(): void
    {
        $server = ['HTTP_WEBHOOK_ID' => self::LG_ID, 'HTTP_WEBHOOK_TIMESTAMP' => (string) self::LG_TS, 'HTTP_WEBHOOK_SIGNATURE' => self::LG_SIG];
        $this->assertSame('ins_1', Webhook::verify($server, self::LG_BODY, self::LG_SECRET, self::LG_TS)['data']['installation_id']);
        $laravel = ['Webhook-Id' => [self::LG_ID], 'Webhook-Timestamp' => [(string) self::LG_TS], 'Webhook-Signature' => [self::LG_SIG]];
        $this->assertSame('ins_1', Webhook::verify($laravel, self::LG_BODY, self::LG_SECRET, self::LG_TS)['data']['installation_id']);
    }

    /** @return iterable<string, array{0: array<string, string>, 1: string, 2: string, 3: int}> */
    public static function forgeries(): iterable
    {
        $h = self::headers(self::LG_ID, self::LG_TS, self::LG_SIG);
        yield 'body changed' => [$h, str_replace('ins_1', 'ins_2', self::LG_BODY), self::LG_SECRET, self::LG_TS];
        yield 'id changed' => [['webhook-id' => 'msg_other'] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'timestamp changed' => [['webhook-timestamp' => (string) (self::LG_TS + 1)] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'other secret' => [$h, self::LG_BODY, self::SPEC_SECRET, self::LG_TS];
        yield 'too old' => [$h, self::LG_BODY, self::LG_SECRET, self::LG_TS + 301];
        yield 'too new' => [$h, self::LG_BODY, self::LG_SECRET, self::LG_TS - 301];
        yield 'no signature' => [['webhook-signature' => ''] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'unversioned signature' => [['webhook-signature' => substr(self::LG_SIG, 3)] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'v2 label' => [['webhook-signature' => 'v2,' . substr(self::LG_SIG, 3)] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'timestamp not a number' => [['webhook-timestamp' => '2026-12-01T09:40:00Z'] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
        yield 'missing id' => [['webhook-id' => ''] + $h, self::LG_BODY, self::LG_SECRET, self::LG_TS];
    }

    /**
     * @dataProvider forgeries
     * @param array<string, string> $headers
     */
    public function testForgeriesAndStaleDeliveriesAreRefused(array $headers, string $body, string $secret, int $now): void
    {
        $this->expectException(WebhookVerificationFailed::class);
        Webhook::verify($headers, $body, $secret, $now);
    }

    public function testTheDefaultToleranceUsesTheClock(): void
    {
        $now = time();
        $sig = Webhook::sign('msg_now', $now - 10, '{"ok":true}', self::LG_SECRET);
        $this->assertTrue(Webhook::verify(self::headers('msg_now', $now - 10, $sig), '{"ok":true}', self::LG_SECRET)['ok']);
    }

    public function testAMalformedSecretIsAProgrammingError(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        Webhook::verify(self::headers(self::LG_ID, self::LG_TS, self::LG_SIG), self::LG_BODY, 'whsec_***not base64***', self::LG_TS);
    }
}

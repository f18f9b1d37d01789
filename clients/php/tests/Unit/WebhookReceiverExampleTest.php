<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Unit;

use LicenseGate\Tests\Support\GatewayTestCase;
use LicenseGate\Tests\Support\PhpServer;
use LicenseGate\Webhook;
use PHPUnit\Framework\TestCase;

/** examples/webhook-receiver.php under `php -S`: verifies, deduplicates by webhook-id, refuses forgeries. */
final class WebhookReceiverExampleTest extends TestCase
{
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

    private string $dir;
    private PhpServer $server;

    protected function setUp(): void
    {
        $this->dir = GatewayTestCase::tempDir();
        $this->server = new PhpServer(dirname(__DIR__, 2) . '/examples/webhook-receiver.php', $this->dir . '/server.log', [
            'LICENSEGATE_WEBHOOK_SECRET' => self::SECRET,
            'LICENSEGATE_WEBHOOK_LOG' => $this->dir . '/events.jsonl',
        ]);
        $this->server->start();
    }

    protected function tearDown(): void
    {
        $this->server->stop();
        GatewayTestCase::removeDir($this->dir);
    }

    /** @param array<string, string> $headers */
    private function post(string $body, array $headers): int
    {
        $ch = curl_init($this->server->url('/hooks/licensegate'));
        $lines = ['Content-Type: application/json'];
        foreach ($headers as $k => $v) {
            $lines[] = "$k: $v";
        }
        curl_setopt_array($ch, [CURLOPT_POST => true, CURLOPT_POSTFIELDS => $body, CURLOPT_HTTPHEADER => $lines, CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 10]);
        curl_exec($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        return $status;
    }

    public function testVerifiedDeliveriesAreHandledOnce(): void
    {
        $body = '{"type":"installation.cloned","data":{"installation_id":"ins_42"}}';
        $ts = time();
        $headers = ['webhook-id' => 'msg_1', 'webhook-timestamp' => (string) $ts, 'webhook-signature' => Webhook::sign('msg_1', $ts, $body, self::SECRET)];

        $this->assertSame(204, $this->post($body, $headers));
        $this->assertSame(204, $this->post($body, $headers), 'a redelivery is acknowledged');
        $this->assertSame(400, $this->post(str_replace('42', '43', $body), $headers), 'a tampered body is refused');
        $this->assertSame(400, $this->post($body, ['webhook-signature' => 'v1,' . base64_encode(random_bytes(32))] + $headers));

        $lines = file($this->dir . '/events.jsonl', FILE_IGNORE_NEW_LINES);
        $this->assertCount(1, $lines);
        $this->assertSame('msg_1', json_decode($lines[0], true)['webhook_id']);
    }
}

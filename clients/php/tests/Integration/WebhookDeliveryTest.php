<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Integration;

use LicenseGate\Tests\Support\Gateway;
use LicenseGate\Tests\Support\GatewayTestCase;
use LicenseGate\Tests\Support\PhpServer;

/**
 * The gateway's real deliveries (SPEC section 10) received by the example
 * back office, which verifies them with Webhook::verify. Skipped, with the
 * gateway's own refusal as the reason, while the gateway has no webhooks.
 */
final class WebhookDeliveryTest extends GatewayTestCase
{
    private const SECRET = 'whsec_bGljZW5zZWdhdGUtdGVzdC1zZWNyZXQtMzItYnl0ZXMh';

    private PhpServer $receiver;
    private string $events;

    protected function setUp(): void
    {
        $this->prepareGateway();
        $this->events = $this->tmp . '/events.jsonl';
        $this->receiver = new PhpServer(dirname(__DIR__, 2) . '/examples/webhook-receiver.php', $this->tmp . '/receiver.log', [
            'LICENSEGATE_WEBHOOK_SECRET' => self::SECRET,
            'LICENSEGATE_WEBHOOK_LOG' => $this->events,
        ]);
        $this->configureWebhook();
        [$ok, $output] = $this->gateway->adapt();
        if (!$ok) {
            if (preg_match('/unrecognized option \\\\?"webhook/', $output)) {
                $this->markTestSkipped('gateway has no webhooks yet (issue 11): its Caddyfile refuses the `webhook` option');
            }
            $this->fail("the webhook Caddyfile does not adapt:\n$output");
        }
        $this->receiver->start();
        $this->onCleanup($this->receiver->stop(...));
        $this->configureWebhook(); // the receiver's port may have moved
        $this->gateway->start();
    }

    private function configureWebhook(): void
    {
        $this->gateway->vars['EXTRA_GLOBAL'] = "\t\twebhook " . $this->receiver->url('/hooks/licensegate') . " {\n\t\t\tsecret " . self::SECRET . "\n\t\t}";
    }

    public function testRealDeliveriesVerifyWithTheExampleReceiver(): void
    {
        $client = $this->client($this->fileStore());
        $activation = $client->activate('KEY-PHP-ALPHA-0001', 'acme.com');
        $client->deactivate();

        $created = $this->awaitEvent('installation.created');
        $deactivated = $this->awaitEvent('installation.deactivated');
        $this->assertStringContainsString($activation->installationId(), json_encode($created));
        $this->assertStringContainsString($activation->installationId(), json_encode($deactivated));
        $this->assertNotSame($created['webhook_id'], $deactivated['webhook_id']);
        $raw = (string) file_get_contents($this->events);
        foreach (self::purchaseCodes() as $code) {
            $this->assertStringNotContainsString($code, $raw, 'a payload carries a purchase code');
        }
        $this->assertStringNotContainsString($activation->tokens->refreshToken, $raw, 'a payload carries a token');
    }

    /** @return array<string, mixed> the first verified event of $type */
    private function awaitEvent(string $type, float $timeout = 15.0): array
    {
        $deadline = microtime(true) + $timeout;
        do {
            foreach (@file($this->events, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [] as $line) {
                $event = json_decode($line, true);
                if (is_array($event) && ($event['type'] ?? null) === $type) {
                    return $event;
                }
            }
            usleep(50_000);
        } while (microtime(true) < $deadline);
        $this->fail("no verified $type delivery within {$timeout}s; receiver log:\n" . @file_get_contents($this->tmp . '/receiver.log'));
    }
}

<?php

declare(strict_types=1);

/*
 * The author's back office: receives licensegate's Standard Webhooks
 * deliveries (installation.created, installation.cloned, license.flagged,
 * license.suspended, ...), verifies them and acts once per delivery id
 * (deliveries are at least once, retried with the same webhook-id).
 *
 *   LICENSEGATE_WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:9100 clients/php/examples/webhook-receiver.php
 *
 * and in the gateway's Caddyfile:
 *   webhook http://127.0.0.1:9100/hooks/licensegate { secret {env.LICENSEGATE_WEBHOOK_SECRET} }
 */

require is_file(__DIR__ . '/../vendor/autoload.php') ? __DIR__ . '/../vendor/autoload.php' : __DIR__ . '/../autoload.php';

use LicenseGate\Webhook;
use LicenseGate\WebhookVerificationFailed;

$secret = getenv('LICENSEGATE_WEBHOOK_SECRET') ?: '';
$eventsFile = getenv('LICENSEGATE_WEBHOOK_LOG') ?: sys_get_temp_dir() . '/licensegate-webhooks.jsonl';

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    http_response_code(405);
    header('Allow: POST');
    return;
}

$body = (string) file_get_contents('php://input'); // the raw bytes: the signature covers them exactly
$headers = function_exists('getallheaders') ? getallheaders() : $_SERVER;

try {
    $event = Webhook::verify($headers, $body, $secret);
} catch (WebhookVerificationFailed $e) {
    http_response_code(400);
    header('Content-Type: text/plain');
    echo 'invalid webhook: ', $e->getMessage();
    return;
}

// Once per delivery id: a retry of a delivery already handled is acknowledged and skipped.
$fh = fopen($eventsFile, 'c+');
flock($fh, LOCK_EX);
$seen = false;
while (($line = fgets($fh)) !== false) {
    if ((json_decode($line, true)['webhook_id'] ?? null) === $event['webhook_id']) {
        $seen = true;
        break;
    }
}
if (!$seen) {
    fseek($fh, 0, SEEK_END);
    fwrite($fh, json_encode($event, JSON_UNESCAPED_SLASHES) . "\n");
    // React here, e.g.:
    // match ($event['type'] ?? '') {
    //     'installation.cloned' => notifyAuthor('A copy of installation ' . $event['data']['installation_id'] . ' was detected.'),
    //     'license.flagged' => queueReview($event['data']['license_id']),
    //     default => null,
    // };
}
flock($fh, LOCK_UN);
fclose($fh);

http_response_code(204);

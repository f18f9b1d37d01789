<?php

declare(strict_types=1);

/*
 * A plain-PHP installer step: the buyer types the licence key once, the
 * installer exchanges it for tokens (stored outside the web root; the key
 * itself is never written anywhere) and marks the product installed.
 *
 * Try it against the quick-start gateway (README):
 *   LICENSEGATE_URL=http://localhost:8080/v1/licenses php -S 127.0.0.1:8000 clients/php/examples/installer.php
 *
 * The messages follow seed 001's scenarios: a key that is not valid keeps
 * the buyer on this step with the gateway's own explanation; "try again
 * later" (the licence server or marketplace unreachable) is a friendly
 * retry, never a white screen.
 */

require is_file(__DIR__ . '/../vendor/autoload.php') ? __DIR__ . '/../vendor/autoload.php' : __DIR__ . '/../autoload.php';

use LicenseGate\ActivationLimitReached;
use LicenseGate\Client;
use LicenseGate\FileTokenStore;
use LicenseGate\IdempotencyKeyReused;
use LicenseGate\LicenseGateException;
use LicenseGate\RateLimited;
use LicenseGate\Unavailable;
use LicenseGate\ValidationFailed;

// Author's settings, baked in before the product is zipped.
$gatewayUrl = getenv('LICENSEGATE_URL') ?: 'https://api.example.com/v1/licenses';
// Outside the web root is best (LICENSEGATE_TOKENS); the default sits in
// the product's tree, so it is a *.php file that shows nothing when
// requested, in a directory the store denies to Apache (FileTokenStore).
$tokenFile = getenv('LICENSEGATE_TOKENS') ?: dirname(__DIR__) . '/storage/licensegate/licence.php';

$store = new FileTokenStore($tokenFile);
$client = new Client($gatewayUrl, $store, ['timeout' => 15]);

$h = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
$message = '';
$retryIn = null;
$idempotencyKey = Client::newIdempotencyKey();

if (($_SERVER['REQUEST_METHOD'] ?? 'GET') === 'POST' && $store->load() === null) {
    $key = (string) ($_POST['license_key'] ?? '');
    $domain = (string) ($_SERVER['HTTP_HOST'] ?? 'localhost');
    // The form's key makes a double click or a resubmitted retry the same activation.
    $attemptKey = preg_match('/^[0-9a-f-]{36}$/', (string) ($_POST['idempotency_key'] ?? '')) ? $_POST['idempotency_key'] : $idempotencyKey;
    try {
        try {
            $activation = $client->activate($key, $domain, ['idempotency_key' => $attemptKey, 'label' => 'installer']);
        } catch (IdempotencyKeyReused) {
            // The buyer corrected the key after a failed attempt: a new attempt.
            $activation = $client->activate($key, $domain);
        }
        // Step 4 of the installer would run here (database, admin user...).
        $license = $activation->license();
        page('Installed', '<p class="ok">Installed. Licensed to ' . $h((string) ($license['licensed_to'] ?? '')) . ' (' . $h((string) ($license['type'] ?? '')) . ', ' . $h((string) ($license['domain'] ?? '')) . ').</p>'
            . (($license['support_active'] ?? true) ? '' : '<p>Support for this licence has ended; the product keeps working.</p>'));
        return;
    } catch (Unavailable $e) {
        // Not the buyer's fault, nothing was recorded: same attempt again later.
        http_response_code(503);
        header('Retry-After: ' . $e->retryAfter());
        $retryIn = $e->retryAfter();
        $idempotencyKey = $attemptKey;
        $message = 'We could not reach the licence server just now. Your key was not used up and nothing was changed. Try again in about ' . $retryIn . ' seconds.';
    } catch (RateLimited $e) {
        http_response_code(429);
        $retryIn = $e->retryAfter();
        $message = $e->getDetail() . ' Try again in about ' . $retryIn . ' seconds.';
    } catch (ActivationLimitReached $e) {
        http_response_code(409);
        $message = $e->getDetail() . ' In use on: ' . implode(', ', $e->domains()) . '. Deactivate one from its admin panel (or ask the author), then try again.';
    } catch (ValidationFailed $e) {
        http_response_code(422);
        $message = $e->getDetail();
        foreach ($e->errors() as $field => $errors) {
            $message .= ' ' . str_replace('_', ' ', $field) . ': ' . implode(', ', $errors) . '.';
        }
    } catch (LicenseGateException $e) {
        // Not found, revoked, expired, wrong product, developer licence on a public domain...
        http_response_code($e->status >= 400 ? $e->status : 400);
        $message = $e->getDetail();
    }
}

if ($store->load() !== null && $message === '') {
    page('Installed', '<p class="ok">Installed. This product is activated.</p>');
    return;
}

page('Activate your licence',
    ($message !== '' ? '<p class="error">' . $h($message) . '</p>' : '')
    . '<form method="post">'
    . '<label>Licence key or purchase code <input name="license_key" required maxlength="255" autocomplete="off"></label>'
    . '<input type="hidden" name="idempotency_key" value="' . $h($idempotencyKey) . '">'
    . '<button>' . ($retryIn !== null ? 'Try again' : 'Activate') . '</button>'
    . '</form>');

function page(string $title, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    echo '<!doctype html><meta charset="utf-8"><title>' . htmlspecialchars($title) . '</title>',
        '<style>body{font:16px system-ui;max-width:36em;margin:3em auto}.error{color:#a00}.ok{color:#070}</style>',
        '<h1>' . htmlspecialchars($title) . '</h1>', $body;
}

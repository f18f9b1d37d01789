<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Unit;

use LicenseGate\ActivationLimitReached;
use LicenseGate\Client;
use LicenseGate\FileTokenStore;
use LicenseGate\InvalidToken;
use LicenseGate\LicenseGateException;
use LicenseGate\NetworkError;
use LicenseGate\Response;
use LicenseGate\Tests\Support\Gateway;
use LicenseGate\Tests\Support\GatewayTestCase;
use LicenseGate\Tokens;
use LicenseGate\Unavailable;
use LicenseGate\ValidationFailed;
use PHPUnit\Framework\TestCase;

final class ClientTest extends TestCase
{
    private string $dir;
    private FileTokenStore $store;

    protected function setUp(): void
    {
        $this->dir = GatewayTestCase::tempDir();
        $this->store = new FileTokenStore($this->dir . '/licence.json');
    }

    protected function tearDown(): void
    {
        GatewayTestCase::removeDir($this->dir);
    }

    /** @param array<string, mixed> $options */
    private function client(FakeTransport $t, array $options = []): Client
    {
        return new Client('https://gw.test/v1/licenses/', $this->store, $options + ['transport' => $t, 'retry_delay' => 0]);
    }

    public function testOneIdempotencyKeyPerActivationReusedOnItsRetries(): void
    {
        $t = new FakeTransport([
            new NetworkError('timeout', true),
            new Response(502, ['content-type' => 'text/html'], '<h1>Bad Gateway</h1>'),
            FakeTransport::tokens(201),
            FakeTransport::tokens(200, '2'),
        ]);
        $client = $this->client($t);

        $first = $client->activate(' SECRET-CODE-1 ', 'acme.com', ['label' => 'prod']);
        $second = $client->activate('SECRET-CODE-1', 'acme.com');

        $this->assertCount(4, $t->requests);
        $keys = array_map(static fn (array $r): string => $r['headers']['Idempotency-Key'], $t->requests);
        $this->assertSame([$keys[0], $keys[0], $keys[0]], array_slice($keys, 0, 3), 'retries reuse the attempt\'s key');
        $this->assertNotSame($keys[0], $keys[3], 'a new activate() call has a new key');
        $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $keys[0]);
        $this->assertSame($keys[0], $first->idempotencyKey);
        $this->assertTrue($first->created);
        $this->assertFalse($second->created);
        $this->assertSame('https://gw.test/v1/licenses/activate', $t->requests[0]['url']);
        parse_str((string) $t->requests[0]['body'], $form);
        $this->assertSame(['license_key' => 'SECRET-CODE-1', 'domain' => 'acme.com', 'label' => 'prod'], $form);
        $this->assertStringNotContainsString('SECRET-CODE-1', (string) file_get_contents($this->store->path()));
    }

    public function testACallersIdempotencyKeyIsSent(): void
    {
        $t = new FakeTransport([FakeTransport::tokens()]);
        $this->client($t)->activate('K', 'acme.com', ['idempotency_key' => 'my-key']);
        $this->assertSame('my-key', $t->requests[0]['headers']['Idempotency-Key']);
    }

    public function testNetworkFailureAfterTheRetriesIsUnavailableAndStoresNothing(): void
    {
        $t = new FakeTransport([new NetworkError('refused'), new NetworkError('refused'), new NetworkError('refused')]);
        try {
            $this->client($t, ['retry_after' => 42])->activate('K', 'acme.com');
            $this->fail('expected Unavailable');
        } catch (Unavailable $e) {
            $this->assertSame('network_error', $e->problemCode);
            $this->assertSame(42, $e->retryAfter());
            $this->assertNotSame('', $e->detail);
        }
        $this->assertCount(3, $t->requests);
        $this->assertNull($this->store->load());
    }

    public function testUpstreamUnavailableCarriesRetryAfterAndIsNotRetried(): void
    {
        $t = new FakeTransport([FakeTransport::problem(503, 'upstream_unavailable', 'The marketplace is not answering.', [], ['retry-after' => '17'])]);
        try {
            $this->client($t)->activate('K', 'acme.com');
            $this->fail('expected Unavailable');
        } catch (Unavailable $e) {
            $this->assertSame('upstream_unavailable', $e->problemCode);
            $this->assertSame(17, $e->retryAfter);
            $this->assertSame('The marketplace is not answering.', $e->getMessage());
        }
        $this->assertCount(1, $t->requests);
        $this->assertNull($this->store->load());
    }

    /** @return iterable<string, array{0: string, 1: int, 2: class-string}> */
    public static function codes(): iterable
    {
        $map = [
            'license_not_found' => [404, \LicenseGate\LicenseNotFound::class],
            'license_revoked' => [403, \LicenseGate\LicenseRevoked::class],
            'license_suspended' => [403, \LicenseGate\LicenseSuspended::class],
            'license_expired' => [403, \LicenseGate\LicenseExpired::class],
            'license_locked' => [403, \LicenseGate\LicenseLocked::class],
            'wrong_product' => [403, \LicenseGate\WrongProduct::class],
            'domain_not_allowed' => [403, \LicenseGate\DomainNotAllowed::class],
            'domain_in_use' => [409, \LicenseGate\DomainInUse::class],
            'activation_limit_reached' => [409, ActivationLimitReached::class],
            'rate_limited' => [429, \LicenseGate\RateLimited::class],
            'move_cooldown' => [429, \LicenseGate\MoveCooldown::class],
            'quota_exceeded' => [429, \LicenseGate\QuotaExceeded::class],
            'upstream_unavailable' => [503, Unavailable::class],
            'store_unavailable' => [503, Unavailable::class],
            'validation_failed' => [422, ValidationFailed::class],
            'invalid_key_format' => [422, \LicenseGate\InvalidKeyFormat::class],
            'idempotency_key_reused' => [422, \LicenseGate\IdempotencyKeyReused::class],
            'malformed_request' => [400, \LicenseGate\RequestRejected::class],
            'invalid_token' => [401, InvalidToken::class],
            'refresh_token_reused' => [401, \LicenseGate\RefreshTokenReused::class],
            'installation_deactivated' => [403, \LicenseGate\InstallationDeactivated::class],
            'installation_released' => [403, \LicenseGate\InstallationReleased::class],
            'token_revoked' => [403, \LicenseGate\TokenRevoked::class],
            'requirement_not_met' => [403, \LicenseGate\RequirementNotMet::class],
            'something_new' => [418, LicenseGateException::class],
        ];
        foreach ($map as $code => [$status, $class]) {
            yield $code => [$code, $status, $class];
        }
    }

    /**
     * @dataProvider codes
     * @param class-string $class
     */
    public function testEachProblemCodeHasItsException(string $code, int $status, string $class): void
    {
        $t = new FakeTransport([FakeTransport::problem($status, $code, "detail for $code")]);
        try {
            $this->client($t)->activate('K', 'acme.com');
            $this->fail("expected $class");
        } catch (LicenseGateException $e) {
            $this->assertSame($class, get_class($e));
            $this->assertSame($code, $e->problemCode);
            $this->assertSame($status, $e->status);
            $this->assertSame("detail for $code", $e->detail);
            if ($e instanceof \LicenseGate\RateLimited || $e instanceof Unavailable) {
                $this->assertSame(30, $e->retryAfter, 'the default when no Retry-After came');
            } else {
                $this->assertNull($e->retryAfter);
            }
        }
    }

    public function testRetryAfterAsAnHttpDate(): void
    {
        $at = gmdate('D, d M Y H:i:s', time() + 120) . ' GMT';
        $e = LicenseGateException::fromResponse(FakeTransport::problem(429, 'rate_limited', 'slow down', [], ['retry-after' => $at]));
        $this->assertInstanceOf(\LicenseGate\RateLimited::class, $e);
        $this->assertEqualsWithDelta(120, $e->retryAfter, 2);
    }

    public function testAProxysHtmlErrorIsUnavailableWithABuyerSafeDetail(): void
    {
        $e = LicenseGateException::fromResponse(new Response(502, ['content-type' => 'text/html'], '<html>nginx stack trace</html>'));
        $this->assertInstanceOf(Unavailable::class, $e);
        $this->assertSame('unavailable', $e->problemCode);
        $this->assertStringNotContainsString('nginx', $e->detail);
        $this->assertSame(30, $e->retryAfter);
    }

    public function testActivationsAreNormalisedFromStringsOrObjects(): void
    {
        $e = LicenseGateException::fromResponse(FakeTransport::problem(409, 'activation_limit_reached', 'All slots used.', ['activations' => [
            'b***r.com',
            ['domain' => 'a***e.com', 'label' => 'production', 'created_at' => '2026-01-01T00:00:00Z', 'last_seen_at' => null],
        ]]));
        $this->assertInstanceOf(ActivationLimitReached::class, $e);
        $this->assertSame(['b***r.com', 'a***e.com'], $e->domains());
        $this->assertSame('production', $e->activations()[1]['label']);
        $this->assertNull($e->activations()[0]['created_at']);
    }

    public function testValidationErrorsByField(): void
    {
        $e = LicenseGateException::fromResponse(FakeTransport::problem(422, 'validation_failed', 'Invalid fields.', ['errors' => ['domain' => ['is required'], 'ip' => ['is not an IP address']]]));
        $this->assertInstanceOf(ValidationFailed::class, $e);
        $this->assertSame(['domain' => ['is required'], 'ip' => ['is not an IP address']], $e->errors());
    }

    public function testRequestRefreshesOnceOn401ThenThrowsInvalidToken(): void
    {
        $this->store->save(new Tokens('ins_test', 'at_old', 'rt_old', time() + 3600));
        $invalid = FakeTransport::problem(401, 'invalid_token', 'The access token is not valid.', [], ['www-authenticate' => 'Bearer error="invalid_token"']);
        $t = new FakeTransport([$invalid, FakeTransport::json(200, ['installation_id' => 'ins_test', 'access_token' => 'at_new', 'expires_in' => 60, 'refresh_token' => 'rt_new']), $invalid]);

        try {
            $this->client($t)->request('GET', 'https://api.test/convert');
            $this->fail('expected InvalidToken');
        } catch (InvalidToken $e) {
            $this->assertSame(401, $e->status);
        }
        $this->assertCount(3, $t->requests, 'one call, one refresh, one retry: no loop');
        $this->assertSame('Bearer at_old', $t->requests[0]['headers']['Authorization']);
        $this->assertSame('https://gw.test/v1/licenses/token', $t->requests[1]['url']);
        parse_str((string) $t->requests[1]['body'], $form);
        $this->assertSame(['grant_type' => 'refresh_token', 'refresh_token' => 'rt_old'], $form);
        $this->assertSame('Bearer at_new', $t->requests[2]['headers']['Authorization']);
        $this->assertSame('rt_new', $this->store->load()?->refreshToken);
    }

    public function testAnExpiringTokenIsRefreshedBeforeTheCall(): void
    {
        $this->store->save(new Tokens('ins_test', 'at_old', 'rt_old', time() + 10, ['domain' => 'acme.com']));
        $t = new FakeTransport([FakeTransport::json(200, ['installation_id' => 'ins_test', 'access_token' => 'at_new', 'expires_in' => 3600, 'refresh_token' => 'rt_new']),
            new Response(200, ['content-type' => 'application/json'], '{"ok":true}')]);

        $response = $this->client($t, ['refresh_before' => 30])->request('POST', 'https://api.test/convert', ['json' => ['amount' => 5]]);

        $this->assertTrue($response->json()['ok']);
        $this->assertSame('Bearer at_new', $t->requests[1]['headers']['Authorization']);
        $this->assertSame('{"amount":5}', $t->requests[1]['body']);
        $this->assertSame('acme.com', $this->store->load()?->domain(), 'a refresh keeps the licence block');
    }

    public function testTheApisOwnErrorsAreReturnedNotThrown(): void
    {
        $this->store->save(new Tokens('ins_test', 'at', 'rt', time() + 3600));
        $t = new FakeTransport([new Response(404, ['content-type' => 'application/problem+json'], '{"code":"not_found","detail":"No such currency: XYZ"}')]);
        $this->assertSame(404, $this->client($t)->request('GET', 'https://api.test/convert?to=XYZ')->status);
    }

    public function testAGateRefusalThrows(): void
    {
        $this->store->save(new Tokens('ins_test', 'at', 'rt', time() + 3600));
        $t = new FakeTransport([FakeTransport::problem(403, 'license_suspended', 'This licence is suspended.')]);
        $this->expectException(\LicenseGate\LicenseSuspended::class);
        $this->client($t)->request('GET', 'https://api.test/convert');
    }

    public function testAReusedRefreshTokenClearsTheStore(): void
    {
        $this->store->save(new Tokens('ins_test', 'at', 'rt', time() - 1));
        $t = new FakeTransport([FakeTransport::problem(401, 'refresh_token_reused', 'Already used.')]);
        try {
            $this->client($t)->request('GET', 'https://api.test/convert');
            $this->fail('expected RefreshTokenReused');
        } catch (\LicenseGate\RefreshTokenReused) {
        }
        $this->assertNull($this->store->load());
    }

    /** Issue 20, N6: a refresh whose answer was lost is sent again at once, with the same token. */
    public function testARefreshWhoseAnswerWasLostIsRetriedAtOnce(): void
    {
        $this->store->save(new Tokens('ins_test', 'at', 'rt', time() - 1));
        $t = new FakeTransport([new NetworkError('reset'), FakeTransport::tokens(200, '2'), FakeTransport::json(200, ['ok' => true])]);
        $this->assertSame(200, $this->client($t)->request('GET', 'https://api.test/convert')->status);
        $this->assertSame($t->requests[0]['body'], $t->requests[1]['body'], 'the retry sends the same refresh token');
        $this->assertStringContainsString('refresh_token=rt', (string) $t->requests[1]['body']);
        $this->assertSame('rt_2', $this->store->load()?->refreshToken);
    }

    public function testARefreshLostToTheNetworkKeepsTheTokens(): void
    {
        $this->store->save(new Tokens('ins_test', 'at', 'rt', time() - 1));
        $t = new FakeTransport([new NetworkError('reset'), new NetworkError('reset again')]);
        try {
            $this->client($t)->request('GET', 'https://api.test/convert');
            $this->fail('expected Unavailable');
        } catch (Unavailable $e) {
            $this->assertSame('network_error', $e->problemCode);
        }
        $this->assertSame('rt', $this->store->load()?->refreshToken);
    }

    public function testBeforeActivationRequestThrowsNotActivated(): void
    {
        $this->expectException(\LicenseGate\NotActivated::class);
        $this->client(new FakeTransport([]))->request('GET', 'https://api.test/convert');
    }

    public function testUnknownOptionsAreRefused(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new Client('https://gw.test', $this->store, ['timeuot' => 5]);
    }

    /** The real curl transport: a server that accepts and never answers is a timeout. */
    public function testATimeoutIsUnavailable(): void
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $this->assertIsResource($server);
        $port = (int) substr((string) strrchr((string) stream_socket_get_name($server, false), ':'), 1);
        $client = new Client("http://127.0.0.1:$port/v1/licenses", $this->store, ['timeout' => 0.5, 'retries' => 0]);
        $started = microtime(true);
        try {
            $client->activate('K', 'acme.com');
            $this->fail('expected Unavailable');
        } catch (Unavailable $e) {
            $this->assertSame('network_error', $e->problemCode);
            $this->assertTrue($e->getPrevious() instanceof NetworkError && $e->getPrevious()->timedOut);
            $this->assertGreaterThan(0, $e->retryAfter());
        } finally {
            fclose($server);
        }
        $this->assertLessThan(3, microtime(true) - $started);
        $this->assertNull($this->store->load());
    }

    public function testARefusedConnectionIsUnavailable(): void
    {
        $port = Gateway::freePort();
        $client = new Client("http://127.0.0.1:$port/v1/licenses", $this->store, ['retries' => 1, 'retry_delay' => 0]);
        $this->expectException(Unavailable::class);
        $client->activate('K', 'acme.com');
    }
}

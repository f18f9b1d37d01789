<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Integration;

use LicenseGate\Tests\Support\GatewayTestCase;
use LicenseGate\TokenStore;
use LicenseGate\Tokens;

/**
 * Twenty PHP processes (as PHP-FPM workers) share one stored token pair and
 * call the gated API at the same moment. Exactly one refresh may reach the
 * gateway: a second refresh with the same refresh token would be a reuse,
 * and the gateway would mark the installation cloned.
 */
final class ConcurrentRefreshTest extends GatewayTestCase
{
    private const KEY = 'KEY-PHP-SWARM-0006';
    private const WORKERS = 20;

    public function testTwentyWorkersRefreshAnExpiredTokenOnceWithTheFileStore(): void
    {
        $store = $this->fileStore();
        $this->swarm($store, 'file', $store->path(), expired: true);
    }

    public function testTwentyWorkersRefreshAnExpiredTokenOnceWithThePdoStore(): void
    {
        $this->swarm($this->pdoStore(), 'pdo', $this->storeDir . '/product.sqlite', expired: true);
    }

    public function testTwentyWorkersRefusedWith401RefreshOnce(): void
    {
        $store = $this->fileStore();
        $this->swarm($store, 'file', $store->path(), expired: false);
    }

    /**
     * The control experiment: the same twenty workers without the store's
     * lock refresh several times with one refresh token. The gateway's
     * refresh_reuse_grace (default 30s) hands every one of them the same
     * new pair, so the race costs requests but is not taken for a clone.
     */
    public function testWithoutTheLockWorkersRefreshMoreThanOnce(): void
    {
        $store = $this->fileStore();
        $tokens = $this->client($store)->activate(self::KEY, 'swarm.com')->tokens;
        $store->save($tokens->withExpiresAt(time() - 1));

        $results = array_column($this->runWorkers('file', $store->path(), ['LG_WORKER_NO_LOCK' => '1']), 1);

        $this->gateway->awaitCount('/v1/licenses/token', 200, 1);
        $refreshes = $this->gateway->count('/v1/licenses/token');
        if (getenv('LICENSEGATE_TEST_VERBOSE') === '1') {
            fwrite(STDERR, sprintf("\n[control] without the lock: %d refresh request(s), outcomes %s, installation %s\n", $refreshes,
                json_encode(array_count_values(array_map(static fn (array $r): string => $r['ok'] ? 'ok' : ($r['error'] ?? '?'), $results))),
                $this->gateway->lookup(self::KEY)['installations'][0]['status']));
        }
        if ($refreshes < 2) {
            $this->markTestSkipped('the lock-free workers did not overlap this run (one refresh)');
        }
        $this->assertSame($refreshes, $this->gateway->count('/v1/licenses/token', 200), 'every racing refresh is answered');
        $this->assertNotContains('LicenseGate\RefreshTokenReused', array_column($results, 'error'));
        $this->assertSame('active', $this->gateway->lookup(self::KEY)['installations'][0]['status']);
    }

    /**
     * @param bool $expired true: the stored access token is past its expiry
     *        (the workers refresh before calling); false: it looks valid but
     *        the gate refuses it (401 invalid_token, they refresh after)
     */
    private function swarm(TokenStore $store, string $kind, string $path, bool $expired): void
    {
        $client = $this->client($store);
        $tokens = $client->activate(self::KEY, 'swarm.com')->tokens;
        $store->save($expired
            ? $tokens->withExpiresAt(time() - 1)
            : new Tokens($tokens->installationId, substr($tokens->accessToken, 0, -4) . 'AAAA', $tokens->refreshToken, time() + 3600, $tokens->license));
        $before = $store->load();

        $results = $this->runWorkers($kind, $path);
        foreach ($results as $i => [$code, $r]) {
            $this->assertSame(0, $code, "worker $i: " . json_encode($r));
        }
        $results = array_column($results, 1);

        foreach ($results as $i => $r) {
            $this->assertTrue($r['ok'], "worker $i: " . json_encode($r));
            $this->assertSame($tokens->installationId, $r['body']['installation'], "worker $i");
        }
        // Every worker's call is in the access log before refreshes are counted.
        $this->gateway->awaitCount('/api/convert', 200, self::WORKERS);
        $refreshes = $this->gateway->count('/v1/licenses/token');
        if (getenv('LICENSEGATE_TEST_VERBOSE') === '1') {
            fwrite(STDERR, sprintf("\n[swarm] %s: %d workers, %d gated calls 200, %d refresh request(s) at the gateway; access log: %s\n",
                $this->getName(), self::WORKERS, $this->gateway->count('/api/convert', 200), $refreshes,
                json_encode(array_count_values(array_map(static fn (array $e): string => $e['method'] . ' ' . explode('?', $e['uri'])[0] . ' ' . $e['status'], $this->gateway->accessLog())))));
        }
        $this->assertSame(1, $refreshes, 'exactly one refresh reaches the token endpoint');
        $this->assertSame(1, $this->gateway->count('/v1/licenses/token', 200));
        $this->assertSame(self::WORKERS, $this->gateway->count('/api/convert', 200));
        // With the refused token, the workers that read the store before the
        // refresh landed saw a 401 (at least the one that refreshed); the
        // later ones read the new token and went straight through.
        $refused = $this->gateway->count('/api/convert', 401);
        if ($expired) {
            $this->assertSame(0, $refused);
        } else {
            $this->assertGreaterThanOrEqual(1, $refused);
            $this->assertLessThanOrEqual(self::WORKERS, $refused);
        }

        // The installation stays active (none is marked cloned) and the
        // refreshed tokens keep working.
        $installations = $this->gateway->lookup(self::KEY)['installations'];
        $this->assertCount(1, $installations);
        $this->assertSame('active', $installations[0]['status']);
        $after = $store->load();
        $this->assertNotSame($before?->refreshToken, $after?->refreshToken);
        $this->assertFalse($after?->isExpired(30));
        $this->assertSame(200, $client->request('GET', $this->gateway->url('/api/convert'))->status);
        $this->assertSame(1, $this->gateway->count('/v1/licenses/token'));
    }

    /**
     * Starts the workers, releases them together once all wait at the
     * barrier, and collects their exit codes and outcomes.
     *
     * @param array<string, string> $env
     * @return list<array{0: int, 1: array<string, mixed>}>
     */
    private function runWorkers(string $kind, string $path, array $env = []): array
    {
        $barrier = $this->tmp . '/barrier';
        mkdir($barrier);
        $procs = [];
        for ($i = 0; $i < self::WORKERS; $i++) {
            $proc = proc_open(
                [PHP_BINARY, dirname(__DIR__) . '/fixtures/worker.php', $kind, $path, $this->gateway->baseUrl(), $this->gateway->url('/api/convert'), $barrier, (string) $i],
                [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
                $pipes,
                null,
                $env + getenv(),
            );
            $this->assertIsResource($proc);
            $procs[] = [$proc, $pipes];
        }
        $this->onCleanup(static function () use ($procs): void {
            foreach ($procs as [$proc]) {
                if (is_resource($proc) && proc_get_status($proc)['running']) {
                    proc_terminate($proc, 9);
                }
            }
        });
        $deadline = microtime(true) + 30;
        while (count(glob("$barrier/ready-*") ?: []) < self::WORKERS) {
            $this->assertLessThan($deadline, microtime(true), 'workers did not start');
            usleep(5_000);
        }
        touch("$barrier/go");

        $results = [];
        foreach ($procs as [$proc, $pipes]) {
            $out = (string) stream_get_contents($pipes[1]);
            $err = (string) stream_get_contents($pipes[2]);
            fclose($pipes[1]);
            fclose($pipes[2]);
            $code = proc_close($proc);
            $results[] = [$code, json_decode($out, true) ?? ['ok' => false, 'error' => 'no JSON', 'raw' => $out . $err]];
        }
        return $results;
    }
}

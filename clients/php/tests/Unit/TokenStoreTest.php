<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Unit;

use LicenseGate\FileTokenStore;
use LicenseGate\LockTimeout;
use LicenseGate\PdoTokenStore;
use LicenseGate\Tests\Support\GatewayTestCase;
use LicenseGate\Tokens;
use LicenseGate\TokenStore;
use PHPUnit\Framework\TestCase;

final class TokenStoreTest extends TestCase
{
    private string $dir;

    protected function setUp(): void
    {
        $this->dir = GatewayTestCase::tempDir();
    }

    protected function tearDown(): void
    {
        GatewayTestCase::removeDir($this->dir);
    }

    /** @return array<string, array{0: callable(string): TokenStore}> */
    public static function stores(): array
    {
        return [
            'file' => [static fn (string $dir): TokenStore => new FileTokenStore("$dir/sub/licence.json")],
            'pdo' => [static function (string $dir): TokenStore {
                $s = new PdoTokenStore(new \PDO("sqlite:$dir/db.sqlite"), 'product-a');
                $s->createTable();
                return $s;
            }],
        ];
    }

    private static function tokens(string $n = '1'): Tokens
    {
        return new Tokens('ins_' . $n, 'at_' . $n, 'rt_' . $n, 1_900_000_000, ['domain' => 'acme.com', 'support_active' => true]);
    }

    /** @dataProvider stores */
    public function testRoundTripAndClear(callable $make): void
    {
        $store = $make($this->dir);
        $this->assertNull($store->load());
        $store->save(self::tokens());
        $this->assertEquals(self::tokens(), $store->load());
        $store->save(self::tokens('2'));
        $this->assertEquals(self::tokens('2'), $make($this->dir)->load(), 'another process sees the new tokens');
        $store->clear();
        $this->assertNull($store->load());
        $store->clear();
    }

    /** @dataProvider stores */
    public function testTheLockIsReentrantAndReturnsTheResult(callable $make): void
    {
        $store = $make($this->dir);
        $result = $store->withLock(static function () use ($store): string {
            $store->save(self::tokens());
            return $store->withLock(static fn (): string => $store->load()?->accessToken ?? '');
        });
        $this->assertSame('at_1', $result);
    }

    /** @dataProvider stores */
    public function testTokensSavedBeforeAFailureInsideTheLockAreKept(callable $make): void
    {
        $store = $make($this->dir);
        try {
            $store->withLock(static function () use ($store): void {
                $store->save(self::tokens('refreshed'));
                throw new \RuntimeException('after the save');
            });
        } catch (\RuntimeException) {
        }
        $this->assertSame('rt_refreshed', $make($this->dir)->load()?->refreshToken);
    }

    public function testTheFileIsPrivateAndWrittenWithoutLeftovers(): void
    {
        $store = new FileTokenStore($this->dir . '/licence.json');
        for ($i = 0; $i < 5; $i++) {
            $store->save(self::tokens((string) $i));
        }
        $this->assertSame(0600, fileperms($store->path()) & 0777);
        $files = array_map('basename', glob($this->dir . '/{,.}*', GLOB_BRACE) ?: []);
        sort($files);
        $this->assertSame(['.', '..', 'licence.json', 'licence.json.lock'], $files);
    }

    /**
     * Issue 20, N7: a token file that must sit in the product's tree (the
     * example installer's default) shows nothing when the web server runs
     * it, and the directory the store makes denies every request.
     */
    public function testATokenFileInTheWebRootShowsNothing(): void
    {
        $path = $this->dir . '/public/storage/licensegate/licence.php';
        $store = new FileTokenStore($path);
        $store->save(self::tokens('7'));
        $this->assertSame('rt_7', $store->load()?->refreshToken);
        $raw = (string) file_get_contents($path);
        $this->assertStringStartsWith('<?php exit; ?>', $raw);
        $served = shell_exec(escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg($path));
        $this->assertSame('', (string) $served, 'running the token file as PHP prints nothing');
        $this->assertStringContainsString('Require all denied', (string) file_get_contents(dirname($path) . '/.htaccess'));
    }

    /** Another process holding the lock makes a waiter give up after its timeout. */
    public function testAHeldFileLockTimesOut(): void
    {
        $path = $this->dir . '/licence.json';
        $holder = proc_open([PHP_BINARY, '-r', '$h = fopen($argv[1], "c"); flock($h, LOCK_EX); echo "held\n"; fgets(STDIN);', $path . '.lock'],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w']], $pipes);
        $this->assertIsResource($holder);
        $this->assertSame("held\n", fgets($pipes[1]));
        $store = new FileTokenStore($path, 0.2);
        try {
            $store->withLock(static fn () => null);
            $this->fail('expected LockTimeout');
        } catch (LockTimeout $e) {
            $this->assertGreaterThan(0, $e->retryAfter());
        } finally {
            fwrite($pipes[0], "\n");
            fclose($pipes[0]);
            fclose($pipes[1]);
            proc_close($holder);
        }
        $this->assertSame('ok', $store->withLock(static fn () => 'ok'), 'free again once released');
    }

    public function testAHeldSqliteLockTimesOut(): void
    {
        $db = $this->dir . '/db.sqlite';
        $store = new PdoTokenStore(new \PDO("sqlite:$db"), 'default', 'licensegate_tokens', 0.2);
        $store->createTable();
        $store->save(self::tokens());
        $holder = proc_open([PHP_BINARY, '-r', '$p = new PDO("sqlite:" . $argv[1]); $p->beginTransaction(); $p->exec("UPDATE licensegate_tokens SET lock_seq = lock_seq + 1"); echo "held\n"; fgets(STDIN); $p->commit();', $db],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w']], $pipes);
        $this->assertIsResource($holder);
        $this->assertSame("held\n", fgets($pipes[1]));
        try {
            $this->assertSame('at_1', $store->load()?->accessToken, 'readers are not blocked');
            $store->withLock(static fn () => null);
            $this->fail('expected LockTimeout');
        } catch (LockTimeout) {
        } finally {
            fwrite($pipes[0], "\n");
            fclose($pipes[0]);
            fclose($pipes[1]);
            proc_close($holder);
        }
        $this->assertSame('ok', $store->withLock(static fn () => 'ok'));
    }

    public function testPdoStoresAreSeparatedByName(): void
    {
        $pdo = new \PDO('sqlite::memory:');
        $a = new PdoTokenStore($pdo, 'a');
        $a->createTable();
        $b = new PdoTokenStore($pdo, 'b');
        $a->save(self::tokens('a'));
        $this->assertNull($b->load());
        $b->save(self::tokens('b'));
        $this->assertSame('at_a', $a->load()?->accessToken);
        $this->assertSame(2, (int) $pdo->query('SELECT count(*) FROM licensegate_tokens')->fetchColumn());
    }
}

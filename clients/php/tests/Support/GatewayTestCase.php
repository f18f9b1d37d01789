<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Support;

use LicenseGate\Client;
use LicenseGate\FileTokenStore;
use LicenseGate\PdoTokenStore;
use PHPUnit\Framework\TestCase;

/**
 * Each test gets its own real gateway (LICENSEGATE_BIN) and a token-store
 * directory; after each passing test, every file of that directory and
 * every row of the PDO table are scanned for the purchase codes.
 */
abstract class GatewayTestCase extends TestCase
{
    /** The static source's keys. Every one is a purchase code the stores must never hold. */
    public const KEYS_CSV = <<<'CSV'
key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-PHP-ALPHA-0001,converter-pro,regular,Alice,,2099-01-01T00:00:00Z,,active
KEY-PHP-BRAVO-0002,converter-pro,extended,Bob,,2099-01-01T00:00:00Z,2,active
KEY-PHP-CHARLIE-03,converter-pro,regular,Carol,,2099-01-01T00:00:00Z,,active
KEY-PHP-EXPIRED-04,converter-pro,regular,Dave,2001-01-01T00:00:00Z,2000-01-01T00:00:00Z,,active
KEY-PHP-REVOKED-05,converter-pro,regular,Erin,,,,revoked
KEY-PHP-SWARM-0006,converter-pro,regular,Frank,,2099-01-01T00:00:00Z,,active
KEY-PHP-MOVER-0007,converter-pro,regular,Grace,,2099-01-01T00:00:00Z,,active

CSV;

    protected Gateway $gateway;
    protected string $tmp;
    protected string $storeDir;
    private ?\PDO $pdo = null;
    /** @var list<callable> */
    private array $cleanups = [];

    /** The licensegate binary, or a skip (a failure when LICENSEGATE_REQUIRE_BIN=1). */
    public static function binary(): string
    {
        $bin = (string) getenv('LICENSEGATE_BIN');
        if ($bin !== '' && is_file($bin) && is_executable($bin)) {
            return $bin;
        }
        $why = $bin === '' ? 'LICENSEGATE_BIN is not set' : "LICENSEGATE_BIN=$bin is not an executable file";
        $why .= ' (build it: go build -o /tmp/lg/licensegate ./cmd/licensegate)';
        if (getenv('LICENSEGATE_REQUIRE_BIN') === '1') {
            self::fail($why . '; LICENSEGATE_REQUIRE_BIN=1 makes this a failure');
        }
        self::markTestSkipped($why);
    }

    protected function setUp(): void
    {
        $this->prepareGateway();
        $this->gateway->start();
    }

    /** Everything setUp does but starting the gateway. */
    protected function prepareGateway(): void
    {
        $bin = self::binary();
        $this->tmp = self::tempDir();
        $this->storeDir = $this->tmp . '/store';
        mkdir($this->storeDir, 0700);
        $this->gateway = new Gateway($bin, $this->tmp . '/gateway', self::KEYS_CSV);
        $this->configure($this->gateway);
    }

    /** Adjusts the gateway's Caddyfile variables before it starts. */
    protected function configure(Gateway $gateway): void
    {
    }

    protected function onCleanup(callable $fn): void
    {
        $this->cleanups[] = $fn;
    }

    protected function assertPostConditions(): void
    {
        $this->assertNoPurchaseCodeStored();
    }

    protected function tearDown(): void
    {
        try {
            // An incomplete test (a reported gateway gap) skips assertPostConditions; scan anyway.
            if ($this->getStatus() === \PHPUnit\Runner\BaseTestRunner::STATUS_INCOMPLETE && isset($this->storeDir)) {
                $this->assertNoPurchaseCodeStored();
            }
        } finally {
            $this->cleanUp();
        }
    }

    private function cleanUp(): void
    {
        foreach (array_reverse($this->cleanups) as $fn) {
            try {
                $fn();
            } catch (\Throwable) {
            }
        }
        $this->cleanups = [];
        if (isset($this->gateway)) {
            $this->gateway->stop();
            if ($this->hasFailed()) {
                fwrite(STDERR, "\n--- licensegate logs (" . $this->getName() . ") ---\n" . substr($this->gateway->logs(), -6000) . "\n");
            }
        }
        $this->pdo = null;
        if (isset($this->tmp) && getenv('LICENSEGATE_KEEP_TMP') !== '1') {
            self::removeDir($this->tmp);
        }
    }

    protected function fileStore(string $name = 'licence.json'): FileTokenStore
    {
        return new FileTokenStore($this->storeDir . '/' . $name);
    }

    protected function pdo(): \PDO
    {
        if ($this->pdo === null) {
            $this->pdo = new \PDO('sqlite:' . $this->storeDir . '/product.sqlite');
            $this->pdo->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
        }
        return $this->pdo;
    }

    protected function pdoStore(string $name = 'default'): PdoTokenStore
    {
        $store = new PdoTokenStore($this->pdo(), $name);
        $store->createTable();
        return $store;
    }

    /** @param array<string, mixed> $options */
    protected function client(\LicenseGate\TokenStore $store, array $options = []): Client
    {
        return new Client($this->gateway->baseUrl(), $store, $options + ['retry_delay' => 0.01]);
    }

    /** @return list<string> */
    protected static function purchaseCodes(): array
    {
        $codes = [];
        foreach (array_slice(explode("\n", trim(self::KEYS_CSV)), 1) as $line) {
            $codes[] = explode(',', $line, 2)[0];
        }
        return $codes;
    }

    /**
     * Acceptance 4: no purchase code in any token-store file (JSON, lock,
     * temporary, SQLite database and journal) or PDO row.
     */
    protected function assertNoPurchaseCodeStored(): void
    {
        $files = 0;
        $rows = 0;
        $it = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($this->storeDir, \FilesystemIterator::SKIP_DOTS));
        foreach ($it as $file) {
            /** @var \SplFileInfo $file */
            if (!$file->isFile()) {
                continue;
            }
            $files++;
            $raw = (string) file_get_contents($file->getPathname());
            foreach (self::purchaseCodes() as $code) {
                foreach ([$code, strtolower($code), urlencode($code), base64_encode($code)] as $form) {
                    $this->assertStringNotContainsString($form, $raw, "purchase code found in {$file->getPathname()}");
                }
            }
        }
        if (is_file($this->storeDir . '/product.sqlite')) {
            $pdo = $this->pdo();
            $has = $pdo->query("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'licensegate_tokens'")->fetchColumn();
            if ((int) $has > 0) {
                foreach ($pdo->query('SELECT * FROM licensegate_tokens')->fetchAll(\PDO::FETCH_ASSOC) as $row) {
                    $rows++;
                    $raw = json_encode($row);
                    foreach (self::purchaseCodes() as $code) {
                        $this->assertStringNotContainsStringIgnoringCase($code, (string) $raw, 'purchase code found in licensegate_tokens');
                    }
                }
            }
        }
        if (getenv('LICENSEGATE_TEST_VERBOSE') === '1') {
            fwrite(STDERR, sprintf("\n[scan] %s: %d store file(s), %d PDO row(s): no purchase code\n", $this->getName(), $files, $rows));
        }
    }

    public static function tempDir(): string
    {
        $dir = sys_get_temp_dir() . '/lg-php-' . bin2hex(random_bytes(6));
        mkdir($dir, 0700);
        return $dir;
    }

    public static function removeDir(string $dir): void
    {
        if (!is_dir($dir)) {
            return;
        }
        $it = new \RecursiveIteratorIterator(new \RecursiveDirectoryIterator($dir, \FilesystemIterator::SKIP_DOTS), \RecursiveIteratorIterator::CHILD_FIRST);
        foreach ($it as $f) {
            $f->isDir() && !$f->isLink() ? @rmdir($f->getPathname()) : @unlink($f->getPathname());
        }
        @rmdir($dir);
    }
}

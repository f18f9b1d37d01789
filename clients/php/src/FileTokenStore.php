<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Tokens in a JSON file (mode 0600), written atomically: a temporary file
 * in the same directory, fsync'ed, then renamed over the old one. The lock
 * is flock() on "<path>.lock", so every PHP-FPM worker and cron job on the
 * machine shares it.
 *
 * Keep the file outside the web root. Where a product cannot (shared
 * hosting, a zip unpacked into public_html), name it "*.php": it is then
 * written behind a `<?php exit; ?>` line, so a web server that runs PHP
 * answers a request for it with nothing; and a directory the store creates
 * gets an .htaccess that denies every request (Apache), for the lock file
 * and the temporary files too.
 */
final class FileTokenStore implements TokenStore
{
    /** @var resource|null */
    private $lockHandle = null;
    private int $depth = 0;

    public function __construct(
        private readonly string $path,
        private readonly float $lockTimeout = 30.0,
    ) {
    }

    public function path(): string
    {
        return $this->path;
    }

    public function load(): ?Tokens
    {
        clearstatcache(true, $this->path);
        if (!is_file($this->path)) {
            return null;
        }
        $raw = @file_get_contents($this->path);
        if ($raw === false) {
            throw new \RuntimeException("licensegate token store: cannot read {$this->path}");
        }
        try {
            $data = json_decode($this->unguard($raw), true, 16, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new \RuntimeException("licensegate token store: {$this->path} is not valid JSON", 0, $e);
        }
        return is_array($data) && $data !== [] ? Tokens::fromArray($data) : null;
    }

    public function save(Tokens $tokens): void
    {
        $this->withLock(function () use ($tokens): void {
            $this->write($this->guard(json_encode($tokens->toArray(), JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES)));
        });
    }

    public function clear(): void
    {
        $this->withLock(function (): void {
            if (is_file($this->path) && !@unlink($this->path)) {
                throw new \RuntimeException("licensegate token store: cannot remove {$this->path}");
            }
        });
    }

    public function withLock(callable $fn): mixed
    {
        if ($this->depth > 0) {
            $this->depth++;
            try {
                return $fn();
            } finally {
                $this->depth--;
            }
        }
        $this->ensureDir();
        $handle = @fopen($this->path . '.lock', 'c');
        if ($handle === false) {
            throw new \RuntimeException("licensegate token store: cannot open {$this->path}.lock");
        }
        $deadline = microtime(true) + $this->lockTimeout;
        // Non-blocking attempts, so a hung holder costs a LockTimeout
        // rather than a worker stuck for ever.
        while (!flock($handle, LOCK_EX | LOCK_NB)) {
            if (microtime(true) >= $deadline) {
                fclose($handle);
                throw LockTimeout::after($this->lockTimeout);
            }
            usleep(random_int(5_000, 20_000));
        }
        $this->lockHandle = $handle;
        $this->depth = 1;
        try {
            return $fn();
        } finally {
            $this->depth = 0;
            $this->lockHandle = null;
            flock($handle, LOCK_UN);
            fclose($handle);
        }
    }

    private function write(string $json): void
    {
        $dir = $this->ensureDir();
        $tmp = @tempnam($dir, '.' . basename($this->path) . '.');
        if ($tmp === false) {
            throw new \RuntimeException("licensegate token store: cannot create a temporary file in $dir");
        }
        try {
            @chmod($tmp, 0600);
            $fh = fopen($tmp, 'wb');
            if ($fh === false || fwrite($fh, $json) !== strlen($json) || !fflush($fh)) {
                throw new \RuntimeException("licensegate token store: cannot write $tmp");
            }
            if (function_exists('fsync')) {
                fsync($fh);
            }
            fclose($fh);
            if (!@rename($tmp, $this->path)) {
                throw new \RuntimeException("licensegate token store: cannot rename $tmp to {$this->path}");
            }
        } catch (\Throwable $e) {
            @unlink($tmp);
            throw $e;
        }
    }

    /** The line a "*.php" token file starts with: PHP runs it and stops, showing nothing. */
    private const GUARD = "<?php exit; ?>\n";

    private function guard(string $json): string
    {
        return str_ends_with($this->path, '.php') ? self::GUARD . $json : $json;
    }

    private function unguard(string $raw): string
    {
        return str_starts_with($raw, self::GUARD) ? substr($raw, strlen(self::GUARD)) : $raw;
    }

    private function ensureDir(): string
    {
        $dir = dirname($this->path);
        if (!is_dir($dir)) {
            if (!@mkdir($dir, 0700, true) && !is_dir($dir)) {
                throw new \RuntimeException("licensegate token store: cannot create $dir");
            }
            // A directory made here holds nothing a browser should get.
            @file_put_contents($dir . '/.htaccess', "Require all denied\nDeny from all\n");
        }
        return $dir;
    }
}

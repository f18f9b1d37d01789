<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Support;

/**
 * One real licensegate process: a Caddyfile on free loopback ports, the
 * embedded store and a static keys CSV in its own temporary directory, and
 * Caddy's access log in a file (to count requests per endpoint).
 */
final class Gateway
{
    public const SECRET = 'php-client-test-secret-0123456789abcdefghijklmnop';
    public const PREFIX = '/v1/licenses';

    /** The site's port (read-only for callers; a first start may move it off a port taken meanwhile). */
    public int $port;
    public int $adminPort;
    /** @var resource|null */
    private $proc = null;
    private bool $startedOnce = false;
    /** @var array<string, string> */
    public array $vars = [
        'ACCESS_TTL' => '1h',
        'ACTIVATIONS' => '1',
        'MOVE_COOLDOWN' => '1h',
        'EXTRA_GLOBAL' => '',
    ];

    public function __construct(
        public readonly string $binary,
        public readonly string $dir,
        string $keysCsv,
    ) {
        if (!is_dir($dir)) {
            mkdir($dir, 0700, true);
        }
        file_put_contents($dir . '/keys.csv', $keysCsv);
        $this->port = self::freePort();
        $this->adminPort = self::freePort();
    }

    /** The next port freePort() tries: a random start, then one up each call. */
    private static ?int $nextPort = null;

    /**
     * A port that was free a moment ago, below the kernel's ephemeral range
     * (Linux: 32768-60999). Two :0 binds in a row may return the same port
     * (the site and the admin listener once got one between them, and the
     * installer API's requests reached the admin API), and a port of that
     * range may be taken by any outgoing connection before the gateway binds
     * it. Below it, a counter keeps this run's ports distinct, and only a
     * listener that asks for a port can take it. The probe binds every
     * interface, as Caddy does.
     */
    public static function freePort(): int
    {
        self::$nextPort ??= random_int(0, 11999);
        for ($i = 0; $i < 12000; $i++) {
            $port = 20000 + (self::$nextPort++ % 12000);
            $server = @stream_socket_server('tcp://0.0.0.0:' . $port, $errno, $errstr);
            if ($server !== false) {
                fclose($server);
                return $port;
            }
        }
        throw new \RuntimeException('no free port below the ephemeral range');
    }

    public function caddyfile(): string
    {
        $template = <<<'CADDY'
{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		storage embedded {{DIR}}/licensegate.db
		secret {env.LG_PHP_SECRET}
		issuer https://gateway.test
		access_token_ttl {{ACCESS_TTL}}
{{EXTRA_GLOBAL}}
		source static {
			file {{DIR}}/keys.csv
		}
		product converter-pro {
			sources static
			activations {{ACTIVATIONS}}
			move_cooldown {{MOVE_COOLDOWN}}
		}
	}
}

http://127.0.0.1:{{PORT}} {
	log {
		output file {{DIR}}/access.log
		format json
	}
	handle /v1/licenses/* {
		license_exchange {
			rate_limit 100000/m
			failed_limit 100000/m
		}
	}
	handle /api/* {
		license_gate {
			products converter-pro
		}
		respond `{"installation":"{http.request.header.X-License-Installation}","domain":"{http.request.header.X-License-Domain}","authorization":"{http.request.header.Authorization}"}` 200
	}
	handle {
		respond "not found" 404
	}
}
CADDY;
        $pairs = ['{{ADMIN}}' => (string) $this->adminPort, '{{PORT}}' => (string) $this->port, '{{DIR}}' => $this->dir];
        foreach ($this->vars as $k => $v) {
            $pairs['{{' . $k . '}}'] = $v;
        }
        return strtr($template, $pairs);
    }

    /** @return array<string, string> */
    private function env(): array
    {
        $env = getenv();
        $env['LG_PHP_SECRET'] = self::SECRET;
        $env['HOME'] = $this->dir;
        $env['XDG_DATA_HOME'] = $this->dir . '/data';
        $env['XDG_CONFIG_HOME'] = $this->dir . '/config';
        return $env;
    }

    /**
     * Checks the Caddyfile with `licensegate adapt`.
     *
     * @return array{0: bool, 1: string} whether it adapts, and the tool's output
     */
    public function adapt(): array
    {
        $cfg = $this->writeConfig();
        $proc = proc_open([$this->binary, 'adapt', '--config', $cfg, '--adapter', 'caddyfile'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, $this->dir, $this->env());
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot run licensegate adapt');
        }
        stream_get_contents($pipes[1]);
        $err = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($proc) === 0, $err];
    }

    /**
     * Starts the process and polls until the installer API answers. A port
     * taken by another process between freePort() and the bind (other test
     * suites share the machine) is retried: on new ports for a first start,
     * on the same ones for a restart, whose clients know the address.
     */
    public function start(): void
    {
        if ($this->proc !== null) {
            throw new \LogicException('gateway already running');
        }
        for ($attempt = 1; ; $attempt++) {
            try {
                $this->launch();
                $this->startedOnce = true;
                return;
            } catch (PortInUse $e) {
                if ($attempt >= 5) {
                    throw new \RuntimeException($e->getMessage());
                }
                if ($this->startedOnce) {
                    usleep(200_000 * $attempt);
                } else {
                    $this->port = self::freePort();
                    $this->adminPort = self::freePort();
                }
            }
        }
    }

    private function launch(): void
    {
        $cfg = $this->writeConfig();
        $log = $this->dir . '/gateway.log';
        clearstatcache();
        $offset = is_file($log) ? (int) filesize($log) : 0;
        $proc = proc_open([$this->binary, 'run', '--config', $cfg, '--adapter', 'caddyfile'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']],
            $pipes, $this->dir, $this->env());
        if (!is_resource($proc)) {
            throw new \RuntimeException('cannot start ' . $this->binary);
        }
        $this->proc = $proc;
        $deadline = microtime(true) + 30;
        while (microtime(true) < $deadline) {
            if (!proc_get_status($proc)['running']) {
                $this->proc = null;
                proc_close($proc);
                $out = substr($this->logs(), $offset);
                if (str_contains($out, 'address already in use')) {
                    throw new PortInUse("licensegate could not bind its ports:\n" . $out);
                }
                throw new \RuntimeException("licensegate exited during start:\n" . $out);
            }
            if (self::httpStatus($this->url(self::PREFIX . '/jwks.json')) === 200) {
                return;
            }
            usleep(25_000);
        }
        $this->stop();
        throw new \RuntimeException("licensegate did not answer within 30s:\n" . $this->logs());
    }

    /** Interrupts the process (SIGINT, as Ctrl-C) and waits for it to exit; SIGKILL after 15s. */
    public function stop(): void
    {
        if ($this->proc === null) {
            return;
        }
        $proc = $this->proc;
        $this->proc = null;
        proc_terminate($proc, 2);
        $deadline = microtime(true) + 15;
        while (proc_get_status($proc)['running'] && microtime(true) < $deadline) {
            usleep(10_000);
        }
        if (proc_get_status($proc)['running']) {
            proc_terminate($proc, 9);
        }
        proc_close($proc);
        // The port no longer accepts connections once stop() returns.
        $deadline = microtime(true) + 5;
        while (self::httpStatus($this->url('/')) !== 0 && microtime(true) < $deadline) {
            usleep(10_000);
        }
    }

    public function running(): bool
    {
        return $this->proc !== null && proc_get_status($this->proc)['running'];
    }

    public function baseUrl(): string
    {
        return $this->url(self::PREFIX);
    }

    public function url(string $path): string
    {
        return 'http://127.0.0.1:' . $this->port . $path;
    }

    public function logs(): string
    {
        return (string) @file_get_contents($this->dir . '/gateway.log');
    }

    /**
     * The access log's entries (Caddy writes one JSON line per request once
     * it is answered).
     *
     * @return list<array{method: string, uri: string, status: int}>
     */
    public function accessLog(): array
    {
        $out = [];
        foreach (@file($this->dir . '/access.log', FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [] as $line) {
            $e = json_decode($line, true);
            if (is_array($e) && isset($e['request']['uri'])) {
                $out[] = ['method' => (string) $e['request']['method'], 'uri' => (string) $e['request']['uri'], 'status' => (int) ($e['status'] ?? 0)];
            }
        }
        return $out;
    }

    /** Requests logged whose path is exactly $path. */
    public function count(string $path, ?int $status = null): int
    {
        $n = 0;
        foreach ($this->accessLog() as $e) {
            if (explode('?', $e['uri'], 2)[0] === $path && ($status === null || $e['status'] === $status)) {
                $n++;
            }
        }
        return $n;
    }

    /** Polls the access log until $total requests to $path with $status are logged. */
    public function awaitCount(string $path, int $status, int $total, float $timeout = 10.0): void
    {
        $deadline = microtime(true) + $timeout;
        while (($n = $this->count($path, $status)) < $total) {
            if (microtime(true) > $deadline) {
                throw new \RuntimeException("only $n of $total requests $path $status reached the access log");
            }
            usleep(10_000);
        }
    }

    /**
     * The admin API's view of a licence, found by key (POST licenses/lookup).
     *
     * @return array<string, mixed>
     */
    public function lookup(string $key): array
    {
        $ch = curl_init('http://127.0.0.1:' . $this->adminPort . '/licensegate/licenses/lookup');
        curl_setopt_array($ch, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => json_encode(['license_key' => $key]),
            CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 10,
        ]);
        $body = (string) curl_exec($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        if ($status !== 200) {
            throw new \RuntimeException("admin lookup: HTTP $status $body");
        }
        return json_decode($body, true, 64, JSON_THROW_ON_ERROR);
    }

    private function writeConfig(): string
    {
        $cfg = $this->dir . '/Caddyfile';
        file_put_contents($cfg, $this->caddyfile());
        return $cfg;
    }

    /** The status of a GET, or 0 when nothing answers. */
    public static function httpStatus(string $url): int
    {
        $ch = curl_init($url);
        curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT_MS => 1000, CURLOPT_CONNECTTIMEOUT_MS => 500, CURLOPT_NOSIGNAL => true]);
        curl_exec($ch);
        $status = curl_errno($ch) === 0 ? (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE) : 0;
        curl_close($ch);
        return $status;
    }
}

/** @internal the gateway exited because a port was taken */
final class PortInUse extends \RuntimeException
{
}

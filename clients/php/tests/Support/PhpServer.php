<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Support;

/** `php -S` serving one example script on a free loopback port. */
final class PhpServer
{
    public int $port;
    /** @var resource|null */
    private $proc = null;

    /** @param array<string, string> $env */
    public function __construct(private readonly string $script, private readonly string $logFile, private readonly array $env = [])
    {
        $this->port = Gateway::freePort();
    }

    /** Starts `php -S`, on a new port when the chosen one was taken meanwhile. */
    public function start(): void
    {
        for ($attempt = 1; ; $attempt++) {
            clearstatcache();
            $offset = is_file($this->logFile) ? (int) filesize($this->logFile) : 0;
            $proc = proc_open([PHP_BINARY, '-d', 'variables_order=EGPCS', '-S', '127.0.0.1:' . $this->port, $this->script],
                [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->logFile, 'a'], 2 => ['file', $this->logFile, 'a']],
                $pipes, dirname($this->script), $this->env + getenv());
            if (!is_resource($proc)) {
                throw new \RuntimeException('cannot start php -S');
            }
            $this->proc = $proc;
            $deadline = microtime(true) + 15;
            while (microtime(true) < $deadline) {
                if (!proc_get_status($proc)['running']) {
                    proc_close($proc);
                    $this->proc = null;
                    $out = substr((string) @file_get_contents($this->logFile), $offset);
                    if ($attempt < 5 && str_contains($out, 'Address already in use')) {
                        $this->port = Gateway::freePort();
                        continue 2;
                    }
                    throw new \RuntimeException("php -S exited:\n" . $out);
                }
                if (Gateway::httpStatus($this->url('/')) !== 0) {
                    return;
                }
                usleep(20_000);
            }
            $this->stop();
            throw new \RuntimeException('php -S did not answer');
        }
    }

    public function stop(): void
    {
        if ($this->proc === null) {
            return;
        }
        proc_terminate($this->proc, 15);
        $deadline = microtime(true) + 5;
        while (proc_get_status($this->proc)['running'] && microtime(true) < $deadline) {
            usleep(10_000);
        }
        if (proc_get_status($this->proc)['running']) {
            proc_terminate($this->proc, 9);
        }
        proc_close($this->proc);
        $this->proc = null;
    }

    public function url(string $path): string
    {
        return 'http://127.0.0.1:' . $this->port . $path;
    }

    /**
     * @param array<string, string>|null $form POSTed when given
     * @return array{0: int, 1: string}
     */
    public function fetch(string $path, ?array $form = null): array
    {
        $ch = curl_init($this->url($path));
        $opts = [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 30];
        if ($form !== null) {
            $opts[CURLOPT_POST] = true;
            $opts[CURLOPT_POSTFIELDS] = http_build_query($form);
        }
        curl_setopt_array($ch, $opts);
        $body = (string) curl_exec($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        return [$status, $body];
    }
}

<?php

declare(strict_types=1);

namespace LicenseGate\Tests\Unit;

use LicenseGate\NetworkError;
use LicenseGate\Response;

/** A scripted transport: answers (or NetworkErrors) in order, and records the requests. */
final class FakeTransport
{
    /** @var list<array{method: string, url: string, headers: array<string, string>, body: ?string}> */
    public array $requests = [];

    /** @param list<Response|NetworkError|callable> $script */
    public function __construct(private array $script)
    {
    }

    /** @param array<string, string> $headers */
    public function __invoke(string $method, string $url, array $headers, ?string $body, float $timeout): Response
    {
        $this->requests[] = ['method' => $method, 'url' => $url, 'headers' => $headers, 'body' => $body];
        if ($this->script === []) {
            throw new \LogicException("unexpected request $method $url");
        }
        $next = array_shift($this->script);
        if (is_callable($next)) {
            $next = $next($method, $url, $headers, $body);
        }
        if ($next instanceof NetworkError) {
            throw $next;
        }
        return $next;
    }

    /** @param array<string, mixed> $json */
    public static function json(int $status, array $json, array $headers = []): Response
    {
        return new Response($status, ['content-type' => 'application/json'] + $headers, json_encode($json));
    }

    /** @param array<string, mixed> $extra */
    public static function problem(int $status, string $code, string $detail, array $extra = [], array $headers = []): Response
    {
        return new Response($status, ['content-type' => 'application/problem+json'] + $headers,
            json_encode(['type' => 'https://github.com/licensegate/licensegate#error-' . $code, 'status' => $status, 'code' => $code, 'detail' => $detail] + $extra));
    }

    public static function tokens(int $status = 201, string $suffix = '1', int $expiresIn = 3600): Response
    {
        return self::json($status, [
            'installation_id' => 'ins_test', 'access_token' => 'at_' . $suffix, 'token_type' => 'Bearer',
            'expires_in' => $expiresIn, 'refresh_token' => 'rt_' . $suffix,
            'license' => ['id' => 'lic_1', 'domain' => 'acme.com', 'licensed_to' => 'Alice'],
        ]);
    }
}

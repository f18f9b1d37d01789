<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * A licensegate installer-API client and a caller of the author's gated APIs.
 *
 *     $client = new Client('https://api.example.com/v1/licenses', new FileTokenStore('/path/outside/webroot/licence.json'));
 *     $client->activate($_POST['license_key'], $_SERVER['HTTP_HOST']);  // once, in the installer
 *     $client->request('GET', 'https://api.example.com/convert?from=EUR&to=USD')->json();
 *
 * The purchase code goes to the gateway once and is never stored; the
 * token store holds the token pair. request() adds the Bearer token and
 * refreshes it when it is about to expire or the gate answers 401
 * invalid_token, under the store's lock: among concurrent workers one
 * refreshes, the others wait and reuse its tokens (a second refresh with
 * the same refresh token only costs a request). A refresh whose answer is
 * lost to the network is sent again at once with the same token.
 *
 * Options:
 *  - timeout (float, 10): seconds per HTTP request;
 *  - connect_timeout (float, 5);
 *  - retries (int, 2): extra attempts of an activation after a network
 *    failure or a proxy's 502/504, with the same Idempotency-Key;
 *  - retry_delay (float, 0.25): seconds before the first retry, doubled each time;
 *  - refresh_before (int, 30): refresh an access token this many seconds before it expires;
 *  - retry_after (int, 30): the retryAfter given to Unavailable/RateLimited when the gateway sent none;
 *  - product (string|null): sent with every activation;
 *  - user_agent (string);
 *  - ca_bundle (string|null): CA file for TLS, when the system's is missing;
 *  - transport (callable|null): fn(string $method, string $url, array $headers, ?string $body, float $timeout): Response,
 *    throwing NetworkError when no answer came; defaults to {@see CurlTransport}.
 */
final class Client
{
    public const VERSION = '0.1.0';

    private const DEFAULTS = [
        'timeout' => 10.0,
        'connect_timeout' => 5.0,
        'retries' => 2,
        'retry_delay' => 0.25,
        'refresh_before' => 30,
        'retry_after' => 30,
        'product' => null,
        'user_agent' => 'licensegate-php/' . self::VERSION,
        'ca_bundle' => null,
        'transport' => null,
    ];

    /** Codes after which stored tokens can never work again. */
    private const DEAD_TOKENS = [
        RefreshTokenReused::class, InvalidToken::class, InstallationDeactivated::class,
        InstallationReleased::class, TokenRevoked::class,
    ];

    /**
     * The refusals a gate (SPEC section 6) answers in front of an API; any
     * other answer, problem+json included, is the API's own.
     */
    private const GATE_CODES = [
        'invalid_token', 'installation_deactivated', 'installation_released', 'token_revoked',
        'license_revoked', 'license_suspended', 'license_expired', 'requirement_not_met',
        'quota_exceeded', 'store_unavailable',
    ];

    private readonly string $baseUrl;
    /** @var array<string, mixed> */
    private readonly array $options;
    /** @var callable */
    private $transport;

    /**
     * @param string $baseUrl the installer API's prefix, e.g. https://api.example.com/v1/licenses
     * @param array<string, mixed> $options see the class comment
     */
    public function __construct(string $baseUrl, private readonly TokenStore $store, array $options = [])
    {
        $unknown = array_diff_key($options, self::DEFAULTS);
        if ($unknown !== []) {
            throw new \InvalidArgumentException('licensegate client: unknown option(s) ' . implode(', ', array_keys($unknown)));
        }
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->options = $options + self::DEFAULTS;
        $this->transport = $this->options['transport']
            ?? new CurlTransport((float) $this->options['connect_timeout'], $this->options['ca_bundle']);
    }

    public function store(): TokenStore
    {
        return $this->store;
    }

    /** The stored tokens (installation id, licence block), or null before activation. */
    public function tokens(): ?Tokens
    {
        return $this->store->load();
    }

    /**
     * Exchanges the buyer's licence key or purchase code for tokens and stores
     * them. One Idempotency-Key is generated per call (or given as the
     * `idempotency_key` option, to retry an earlier attempt) and sent on each
     * of its retries, so a retried activation never takes a second slot.
     *
     * @param array{product?: string, label?: string, ip?: string, idempotency_key?: string} $options
     * @throws LicenseGateException a subclass by the problem code: LicenseNotFound, LicenseExpired,
     *         ActivationLimitReached, ValidationFailed, Unavailable (network failures included)...
     */
    public function activate(string $key, string $domain, array $options = []): Activation
    {
        $fields = ['license_key' => trim($key), 'domain' => $domain];
        $product = $options['product'] ?? $this->options['product'];
        if ($product !== null) {
            $fields['product'] = (string) $product;
        }
        foreach (['label', 'ip'] as $name) {
            if (isset($options[$name])) {
                $fields[$name] = (string) $options[$name];
            }
        }
        $idempotencyKey = (string) ($options['idempotency_key'] ?? self::newIdempotencyKey());
        $body = http_build_query($fields, '', '&', PHP_QUERY_RFC1738);
        unset($fields, $key);

        $retries = max(0, (int) $this->options['retries']);
        $delay = (float) $this->options['retry_delay'];
        for ($attempt = 0; ; $attempt++) {
            try {
                $response = $this->send('POST', $this->endpoint('activate'), [
                    'Content-Type' => 'application/x-www-form-urlencoded',
                    'Idempotency-Key' => $idempotencyKey,
                ], $body);
            } catch (NetworkError $e) {
                if ($attempt < $retries) {
                    $this->pause($delay * (2 ** $attempt));
                    continue;
                }
                throw Unavailable::network($e, (int) $this->options['retry_after']);
            }
            if (in_array($response->status, [502, 504], true) && !$response->isProblem() && $attempt < $retries) {
                $this->pause($delay * (2 ** $attempt));
                continue;
            }
            break;
        }
        $answer = $this->decode($response);
        $tokens = Tokens::fromAnswer($answer);
        $this->store->save($tokens);
        return new Activation($tokens, $response->status === 201, $idempotencyKey);
    }

    /**
     * Frees the slot and revokes the installation's tokens, then clears the
     * store. An installation the gateway already deactivated is cleared too.
     */
    public function deactivate(): void
    {
        try {
            $response = $this->authorized(fn (Tokens $t): Response => $this->send('POST', $this->endpoint('deactivate'), [
                'Authorization' => 'Bearer ' . $t->accessToken,
            ], null));
            $this->decode($response);
        } catch (InstallationDeactivated | InstallationReleased | NotActivated) {
            // Already gone: nothing holds a slot.
        }
        $this->store->clear();
    }

    /**
     * Moves this installation (same id and history) to a new domain, with a
     * fresh token pair; at most once per the product's move_cooldown.
     *
     * @throws MoveCooldown|DomainInUse|DomainNotAllowed|ActivationLimitReached|LicenseGateException
     */
    public function move(string $domain): Tokens
    {
        return $this->store->withLock(function () use ($domain): Tokens {
            $response = $this->authorized(fn (Tokens $t): Response => $this->send('POST', $this->endpoint('move'), [
                'Authorization' => 'Bearer ' . $t->accessToken,
                'Content-Type' => 'application/x-www-form-urlencoded',
            ], http_build_query(['domain' => $domain])));
            $tokens = Tokens::fromAnswer($this->decode($response), $this->store->load()?->license ?? []);
            $this->store->save($tokens);
            return $tokens;
        });
    }

    /**
     * The licence block from the gateway's store (no marketplace call):
     * status, support_until, support_active, product_retired, activations...
     * The stored copy is updated.
     *
     * @return array<string, mixed>
     */
    public function status(): array
    {
        $response = $this->authorized(fn (Tokens $t): Response => $this->send('GET', $this->endpoint('status'), [
            'Authorization' => 'Bearer ' . $t->accessToken,
        ], null));
        $answer = $this->decode($response);
        $license = isset($answer['license']) && is_array($answer['license']) ? $answer['license'] : [];
        $this->keepLicense($license);
        return $license;
    }

    /** Stores a licence block the gateway answered beside the tokens. */
    private function keepLicense(array $license): void
    {
        $this->store->withLock(function () use ($license): void {
            $current = $this->store->load();
            if ($current !== null) {
                $this->store->save($current->withLicense($license));
            }
        });
    }

    /**
     * Asks the gateway to check the licence at its marketplace now (the
     * buyer says "I renewed my support") and returns the licence block
     * after it, with whether the marketplace answered: `checked` false
     * means it could not (an outage) and `license` is the stored block.
     * The stored copy is updated. At most once per the product's
     * refresh_cooldown.
     *
     * It presents the refresh token (which it does not spend): a licence
     * that expired or was suspended cannot renew its access token, and
     * that is exactly when a buyer who renewed asks. The gateway may wait
     * for the marketplace, so the call allows at least 30 seconds.
     *
     * @return array{license: array<string, mixed>, checked: bool}
     * @throws RefreshCooldown|LicenseGateException
     */
    public function refreshStatus(): array
    {
        $tokens = $this->store->load() ?? throw NotActivated::create();
        $response = $this->send('POST', $this->endpoint('status/refresh'), [
            'Authorization' => 'Bearer ' . $tokens->refreshToken,
        ], null, max(30.0, (float) $this->options['timeout']));
        $answer = $this->decode($response);
        $license = isset($answer['license']) && is_array($answer['license']) ? $answer['license'] : [];
        $this->keepLicense($license);
        return ['license' => $license, 'checked' => ($answer['checked'] ?? false) === true];
    }

    /**
     * Calls one of the author's gated APIs with the installation's token.
     * Refreshes first when the access token is about to expire, and once
     * more on a 401 invalid_token. The gate's refusals (problem answers with
     * a gate code, e.g. 403 license_suspended, 429 quota_exceeded, 503
     * store_unavailable) throw, and so does a network failure (Unavailable);
     * any other answer of the API is returned as it is (`throw` => false:
     * the gate's too).
     *
     * @param array{headers?: array<string, string>, query?: array<string, mixed>, json?: mixed,
     *              form?: array<string, mixed>, body?: string, timeout?: float, throw?: bool} $options
     */
    public function request(string $method, string $url, array $options = []): Response
    {
        $method = strtoupper($method);
        $headers = $options['headers'] ?? [];
        $body = null;
        if (isset($options['query']) && $options['query'] !== []) {
            $url .= (str_contains($url, '?') ? '&' : '?') . http_build_query($options['query']);
        }
        if (array_key_exists('json', $options)) {
            $body = json_encode($options['json'], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
            $headers['Content-Type'] ??= 'application/json';
        } elseif (isset($options['form'])) {
            $body = http_build_query($options['form']);
            $headers['Content-Type'] ??= 'application/x-www-form-urlencoded';
        } elseif (isset($options['body'])) {
            $body = (string) $options['body'];
        }
        $headers['Accept'] ??= 'application/json';
        $timeout = (float) ($options['timeout'] ?? $this->options['timeout']);

        $response = $this->authorized(function (Tokens $t) use ($method, $url, $headers, $body, $timeout): Response {
            return $this->send($method, $url, ['Authorization' => 'Bearer ' . $t->accessToken] + $headers, $body, $timeout);
        });
        if (($options['throw'] ?? true) && $response->status >= 400) {
            $code = $response->problemCode();
            if ($code !== null && in_array($code, self::GATE_CODES, true)) {
                throw LicenseGateException::fromResponse($response, (int) $this->options['retry_after']);
            }
        }
        return $response;
    }

    /**
     * Refreshes the token pair under the store's lock and returns the tokens
     * to use. Given the tokens a caller saw (expired, or refused with 401),
     * it refreshes only if the store still holds those: when another worker
     * refreshed meanwhile its tokens are returned instead. Without $seen it
     * always refreshes (a cron job that keeps an idle installation's refresh
     * token alive, say).
     */
    public function refresh(?Tokens $seen = null): Tokens
    {
        return $this->store->withLock(function () use ($seen): Tokens {
            $current = $this->store->load();
            if ($current === null) {
                throw NotActivated::create();
            }
            if ($seen !== null && $current->accessToken !== $seen->accessToken
                && !$current->isExpired((int) $this->options['refresh_before'])) {
                return $current;
            }
            $request = http_build_query(['grant_type' => 'refresh_token', 'refresh_token' => $current->refreshToken]);
            $headers = ['Content-Type' => 'application/x-www-form-urlencoded'];
            try {
                $response = $this->send('POST', $this->endpoint('token'), $headers, $request);
            } catch (NetworkError $first) {
                // The answer may be lost after the gateway rotated the token:
                // the same token sent again at once gets that same answer (or,
                // later, a fresh pair), never a clone verdict.
                try {
                    $response = $this->send('POST', $this->endpoint('token'), $headers, $request);
                } catch (NetworkError $e) {
                    throw Unavailable::network($e, (int) $this->options['retry_after']);
                }
            }
            try {
                $answer = $this->decode($response);
            } catch (LicenseGateException $e) {
                foreach (self::DEAD_TOKENS as $class) {
                    if ($e instanceof $class) {
                        $this->store->clear();
                        break;
                    }
                }
                throw $e;
            }
            $tokens = Tokens::fromAnswer($answer, $current->license);
            $this->store->save($tokens);
            return $tokens;
        });
    }

    /** A fresh random Idempotency-Key (UUID v4). */
    public static function newIdempotencyKey(): string
    {
        $b = random_bytes(16);
        $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
        $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
    }

    /**
     * Sends $call with the current tokens, refreshing them first when they
     * are about to expire and once more when the answer is 401 invalid_token.
     *
     * @param callable(Tokens): Response $call
     */
    private function authorized(callable $call): Response
    {
        $tokens = $this->store->load() ?? throw NotActivated::create();
        $refreshed = false;
        if ($tokens->isExpired((int) $this->options['refresh_before'])) {
            $tokens = $this->refresh($tokens);
            $refreshed = true;
        }
        try {
            $response = $call($tokens);
            if (!$refreshed && self::isInvalidToken($response)) {
                $response = $call($this->refresh($tokens));
            }
        } catch (NetworkError $e) {
            throw Unavailable::network($e, (int) $this->options['retry_after']);
        }
        return $response;
    }

    private static function isInvalidToken(Response $response): bool
    {
        if ($response->status !== 401) {
            return false;
        }
        if ($response->problemCode() === 'invalid_token') {
            return true;
        }
        return (bool) preg_match('/^\s*Bearer\b.*error\s*=\s*"?invalid_token"?/i', $response->header('www-authenticate') ?? '');
    }

    /**
     * The JSON object of a successful answer (empty for 204), or the
     * exception for an error answer.
     *
     * @return array<string, mixed>
     */
    private function decode(Response $response): array
    {
        if ($response->status >= 400 || $response->status < 200) {
            throw LicenseGateException::fromResponse($response, (int) $this->options['retry_after']);
        }
        if ($response->status === 204 || $response->body === '') {
            return [];
        }
        $json = $response->json();
        if (!is_array($json)) {
            throw new LicenseGateException('unexpected_response', 'The licence server gave an unexpected answer.', $response->status);
        }
        return $json;
    }

    /** @param array<string, string> $headers */
    private function send(string $method, string $url, array $headers, ?string $body, ?float $timeout = null): Response
    {
        $headers['User-Agent'] ??= (string) $this->options['user_agent'];
        $headers['Accept'] ??= 'application/json, application/problem+json';
        return ($this->transport)($method, $url, $headers, $body, $timeout ?? (float) $this->options['timeout']);
    }

    private function endpoint(string $name): string
    {
        return $this->baseUrl . '/' . $name;
    }

    private function pause(float $seconds): void
    {
        if ($seconds > 0) {
            usleep((int) ($seconds * 1_000_000 * (0.5 + mt_rand() / mt_getrandmax() / 2)));
        }
    }
}

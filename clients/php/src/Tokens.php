<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * What an installation keeps: its id, the token pair, when the access token
 * expires (by this machine's clock, from `expires_in`) and the licence block
 * last seen. Never the purchase code.
 */
final class Tokens
{
    /** @param array<string, mixed> $license */
    public function __construct(
        public readonly string $installationId,
        public readonly string $accessToken,
        public readonly string $refreshToken,
        public readonly int $expiresAt,
        public readonly array $license = [],
    ) {
    }

    /**
     * From an activate, move or token answer; a token answer has no licence
     * block, so the previous one is kept.
     *
     * @param array<string, mixed> $body
     * @param array<string, mixed> $previousLicense
     */
    public static function fromAnswer(array $body, array $previousLicense = [], ?int $now = null): self
    {
        foreach (['installation_id', 'access_token', 'refresh_token'] as $field) {
            if (!isset($body[$field]) || !is_string($body[$field]) || $body[$field] === '') {
                throw new LicenseGateException('unexpected_response', 'The licence server gave an unexpected answer.', 0, ['missing' => $field]);
            }
        }
        $expiresIn = isset($body['expires_in']) && is_numeric($body['expires_in']) ? (int) $body['expires_in'] : 0;
        $license = isset($body['license']) && is_array($body['license']) ? $body['license'] : $previousLicense;
        return new self($body['installation_id'], $body['access_token'], $body['refresh_token'], ($now ?? time()) + $expiresIn, $license);
    }

    /** True when the access token expires within $skew seconds. */
    public function isExpired(int $skew = 0, ?int $now = null): bool
    {
        return $this->expiresAt - $skew <= ($now ?? time());
    }

    /** The installation's domain, from the licence block. */
    public function domain(): ?string
    {
        return isset($this->license['domain']) && is_string($this->license['domain']) ? $this->license['domain'] : null;
    }

    /** @param array<string, mixed> $license */
    public function withLicense(array $license): self
    {
        return new self($this->installationId, $this->accessToken, $this->refreshToken, $this->expiresAt, $license);
    }

    public function withExpiresAt(int $expiresAt): self
    {
        return new self($this->installationId, $this->accessToken, $this->refreshToken, $expiresAt, $this->license);
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return [
            'installation_id' => $this->installationId,
            'access_token' => $this->accessToken,
            'refresh_token' => $this->refreshToken,
            'expires_at' => $this->expiresAt,
            'license' => $this->license,
        ];
    }

    /** @param array<string, mixed> $data */
    public static function fromArray(array $data): self
    {
        foreach (['installation_id', 'access_token', 'refresh_token'] as $field) {
            if (!isset($data[$field]) || !is_string($data[$field])) {
                throw new \UnexpectedValueException("stored tokens: $field missing");
            }
        }
        return new self(
            $data['installation_id'],
            $data['access_token'],
            $data['refresh_token'],
            (int) ($data['expires_at'] ?? 0),
            isset($data['license']) && is_array($data['license']) ? $data['license'] : [],
        );
    }
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * An HTTP answer: status, headers (names lower-cased, repeated values joined
 * with ", ") and the raw body.
 */
final class Response
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** The body decoded as JSON (associative arrays), or null when it is not JSON. */
    public function json(): mixed
    {
        if ($this->body === '') {
            return null;
        }
        try {
            return json_decode($this->body, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return null;
        }
    }

    public function isSuccessful(): bool
    {
        return $this->status >= 200 && $this->status < 300;
    }

    /** An RFC 9457 problem details answer (application/problem+json). */
    public function isProblem(): bool
    {
        $type = strtolower(trim(explode(';', $this->header('content-type') ?? '')[0]));
        return $type === 'application/problem+json';
    }

    /** The problem `code` member, when the answer is a problem with one. */
    public function problemCode(): ?string
    {
        if (!$this->isProblem()) {
            return null;
        }
        $json = $this->json();
        return is_array($json) && isset($json['code']) && is_string($json['code']) ? $json['code'] : null;
    }

    /**
     * Retry-After in seconds (delta-seconds or an HTTP date), or null when
     * absent or unreadable.
     */
    public function retryAfter(?int $now = null): ?int
    {
        $value = trim($this->header('retry-after') ?? '');
        if ($value === '') {
            return null;
        }
        if (ctype_digit($value)) {
            return (int) $value;
        }
        $at = strtotime($value);
        if ($at === false) {
            return null;
        }
        return max(0, $at - ($now ?? time()));
    }
}

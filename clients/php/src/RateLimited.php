<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Too many requests (429 rate_limited, and the subclasses for move_cooldown,
 * refresh_cooldown and quota_exceeded). `retryAfter` is always set: the gateway's
 * Retry-After, or the client's default.
 */
class RateLimited extends LicenseGateException
{
    public function retryAfter(): int
    {
        return $this->retryAfter ?? 0;
    }

    protected static function defaultDetail(int $status): string
    {
        return 'Too many attempts. Please wait a moment and try again.';
    }
}

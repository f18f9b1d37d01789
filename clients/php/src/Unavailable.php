<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Try again later: the marketplace or the gateway's storage is down
 * (503 upstream_unavailable / store_unavailable), the gateway answered 5xx,
 * or it could not be reached at all (problemCode `network_error`, status 0:
 * connection refused, DNS, TLS, timeout). Never the buyer's fault, and
 * nothing was recorded; `retryAfter` is always set.
 */
class Unavailable extends LicenseGateException
{
    public function retryAfter(): int
    {
        return $this->retryAfter ?? 0;
    }

    public static function network(NetworkError $e, int $retryAfter): self
    {
        return new static(
            'network_error',
            'The licence server could not be reached. Please check the server\'s internet connection and try again in a minute.',
            0,
            [],
            $retryAfter,
            $e,
        );
    }

    protected static function defaultDetail(int $status): string
    {
        return 'The licence server is temporarily unavailable. Please try again in a minute.';
    }
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * A transport failure: no HTTP answer at all (connection refused, DNS,
 * TLS, timeout, reset). The client turns it into {@see Unavailable}; a
 * custom transport throws it.
 */
final class NetworkError extends \RuntimeException
{
    public function __construct(string $message, public readonly bool $timedOut = false, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}

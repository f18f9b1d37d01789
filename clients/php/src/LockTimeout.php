<?php

declare(strict_types=1);

namespace LicenseGate;

/** The token store's lock was not obtained in time (another worker's refresh hung). */
class LockTimeout extends Unavailable
{
    public static function after(float $seconds, ?\Throwable $previous = null): self
    {
        return new self(
            'lock_timeout',
            'The licence check is busy. Please try again in a moment.',
            0,
            ['lock_timeout' => $seconds],
            5,
            $previous,
        );
    }
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/** The token store holds no tokens: the product has not been activated (or its tokens were revoked). Not a gateway answer. */
class NotActivated extends LicenseGateException
{
    public static function create(): self
    {
        return new self('not_activated', 'This installation is not activated. Enter your licence key to activate it.');
    }
}

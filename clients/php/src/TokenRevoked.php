<?php

declare(strict_types=1);

namespace LicenseGate;

/** The token was replaced (a move or re-activation elsewhere) or its installation was marked cloned (403 token_revoked). */
class TokenRevoked extends LicenseGateException
{
}

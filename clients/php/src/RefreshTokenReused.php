<?php

declare(strict_types=1);

namespace LicenseGate;

/** A spent refresh token was presented again: the gateway marked the installation cloned and revoked its tokens (401 refresh_token_reused). The client clears its token store; the product must be activated again. */
class RefreshTokenReused extends LicenseGateException
{
}

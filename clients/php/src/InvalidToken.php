<?php

declare(strict_types=1);

namespace LicenseGate;

/** The access or refresh token is missing, expired, malformed or foreign (401 invalid_token). The client refreshes once before throwing it. */
class InvalidToken extends LicenseGateException
{
}

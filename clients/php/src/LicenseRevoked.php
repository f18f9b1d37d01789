<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence was revoked or refunded (403 license_revoked). */
class LicenseRevoked extends LicenseGateException
{
}

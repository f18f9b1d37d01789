<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence has expired (403 license_expired). */
class LicenseExpired extends LicenseGateException
{
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/** The key or purchase code does not exist (404 license_not_found). */
class LicenseNotFound extends LicenseGateException
{
}

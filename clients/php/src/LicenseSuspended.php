<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence is suspended (403 license_suspended). */
class LicenseSuspended extends LicenseGateException
{
}

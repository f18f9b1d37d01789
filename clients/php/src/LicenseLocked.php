<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence is frozen for new activations; existing installations keep working (403 license_locked). */
class LicenseLocked extends LicenseGateException
{
}

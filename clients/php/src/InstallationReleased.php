<?php

declare(strict_types=1);

namespace LicenseGate;

/** The installation went unused for too long and no longer holds a slot (403 installation_released): ask the buyer for the code again. */
class InstallationReleased extends LicenseGateException
{
}

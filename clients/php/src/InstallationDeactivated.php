<?php

declare(strict_types=1);

namespace LicenseGate;

/** The installation was deactivated (403 installation_deactivated). */
class InstallationDeactivated extends LicenseGateException
{
}

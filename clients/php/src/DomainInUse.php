<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence is already active on that domain, this installation included (409 domain_in_use). */
class DomainInUse extends LicenseGateException
{
}

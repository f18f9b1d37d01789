<?php

declare(strict_types=1);

namespace LicenseGate;

/** The gated API requires something this licence lacks, e.g. active support (403 requirement_not_met). */
class RequirementNotMet extends LicenseGateException
{
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/** The licence was checked moments ago (429 refresh_cooldown); `retryAfter` says when it may be asked again. */
class RefreshCooldown extends RateLimited
{
}

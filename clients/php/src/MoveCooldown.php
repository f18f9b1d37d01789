<?php

declare(strict_types=1);

namespace LicenseGate;

/** The installation moved too recently (429 move_cooldown); `retryAfter` says when it may move again. */
class MoveCooldown extends RateLimited
{
}

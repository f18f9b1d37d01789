<?php

declare(strict_types=1);

namespace LicenseGate;

/** The installation spent its request budget on a gated API (429 quota_exceeded). */
class QuotaExceeded extends RateLimited
{
}

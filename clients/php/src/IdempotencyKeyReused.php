<?php

declare(strict_types=1);

namespace LicenseGate;

/** The same Idempotency-Key was sent with a different request (422 idempotency_key_reused). */
class IdempotencyKeyReused extends LicenseGateException
{
}

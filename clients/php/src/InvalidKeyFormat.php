<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * The key fits no configured source's format, or holds look-alike non-ASCII
 * characters pasted from a PDF (422 invalid_key_format); no marketplace was asked.
 */
class InvalidKeyFormat extends ValidationFailed
{
}

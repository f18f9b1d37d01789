<?php

declare(strict_types=1);

namespace LicenseGate;

/** The key belongs to another product (403 wrong_product). */
class WrongProduct extends LicenseGateException
{
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/** This licence may not be used on this domain, e.g. a developer licence on a public domain (403 domain_not_allowed). */
class DomainNotAllowed extends LicenseGateException
{
}

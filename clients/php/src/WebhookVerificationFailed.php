<?php

declare(strict_types=1);

namespace LicenseGate;

/** A webhook delivery that is not signed by the gateway, or is too old or too new; answer 400 and ignore it. */
final class WebhookVerificationFailed extends \UnexpectedValueException
{
}

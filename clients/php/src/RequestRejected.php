<?php

declare(strict_types=1);

namespace LicenseGate;

/** The gateway could not read the request (malformed_request, request_too_large, unsupported_media_type, not_found, method_not_allowed): a client or configuration bug, not the buyer's fault. */
class RequestRejected extends LicenseGateException
{
}

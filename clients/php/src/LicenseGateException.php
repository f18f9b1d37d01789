<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * A refusal or failure, classified by the problem `code` the gateway sent
 * (RFC 9457 problem details). `detail` is safe to show the buyer; the
 * exception message is the same text. Catch a subclass for one case, or
 * this class for all of them.
 */
class LicenseGateException extends \RuntimeException
{
    /**
     * @param string $problemCode the stable machine-readable code, e.g. license_not_found
     * @param string $detail      a message the installer can show the buyer
     * @param int    $status      the HTTP status (0 when no answer came)
     * @param array<string, mixed> $problem the whole problem object
     * @param int|null $retryAfter seconds to wait before trying again, when the gateway or the client knows
     */
    public function __construct(
        public readonly string $problemCode,
        public readonly string $detail,
        public readonly int $status = 0,
        public readonly array $problem = [],
        public readonly ?int $retryAfter = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($detail, $status, $previous);
    }

    public function getProblemCode(): string
    {
        return $this->problemCode;
    }

    public function getDetail(): string
    {
        return $this->detail;
    }

    /** problem code => exception class */
    private const CLASSES = [
        'license_not_found' => LicenseNotFound::class,
        'license_revoked' => LicenseRevoked::class,
        'license_suspended' => LicenseSuspended::class,
        'license_expired' => LicenseExpired::class,
        'license_locked' => LicenseLocked::class,
        'wrong_product' => WrongProduct::class,
        'domain_not_allowed' => DomainNotAllowed::class,
        'domain_in_use' => DomainInUse::class,
        'activation_limit_reached' => ActivationLimitReached::class,
        'rate_limited' => RateLimited::class,
        'move_cooldown' => MoveCooldown::class,
        'refresh_cooldown' => RefreshCooldown::class,
        'quota_exceeded' => QuotaExceeded::class,
        'upstream_unavailable' => Unavailable::class,
        'store_unavailable' => Unavailable::class,
        'validation_failed' => ValidationFailed::class,
        'invalid_key_format' => InvalidKeyFormat::class,
        'idempotency_key_reused' => IdempotencyKeyReused::class,
        'malformed_request' => RequestRejected::class,
        'request_too_large' => RequestRejected::class,
        'unsupported_media_type' => RequestRejected::class,
        'method_not_allowed' => RequestRejected::class,
        'not_found' => RequestRejected::class,
        'invalid_token' => InvalidToken::class,
        'refresh_token_reused' => RefreshTokenReused::class,
        'installation_deactivated' => InstallationDeactivated::class,
        'installation_released' => InstallationReleased::class,
        'token_revoked' => TokenRevoked::class,
        'requirement_not_met' => RequirementNotMet::class,
    ];

    /** Whether $code is one of licensegate's problem codes. */
    public static function isKnownCode(string $code): bool
    {
        return isset(self::CLASSES[$code]);
    }

    /**
     * The exception for an error answer. A non-problem answer (an HTML 502
     * from a proxy, say) is classified by its status: 5xx is Unavailable.
     */
    public static function fromResponse(Response $response, int $defaultRetryAfter = 30): self
    {
        $status = $response->status;
        $problem = $response->isProblem() && is_array($json = $response->json()) ? $json : [];
        $code = isset($problem['code']) && is_string($problem['code']) ? $problem['code'] : '';
        $detail = isset($problem['detail']) && is_string($problem['detail']) && $problem['detail'] !== '' ? $problem['detail'] : '';
        $class = self::CLASSES[$code] ?? match (true) {
            $status >= 500 => Unavailable::class,
            $status === 429 => RateLimited::class,
            $status === 422 => ValidationFailed::class,
            $status === 401 => InvalidToken::class,
            default => self::class,
        };
        if ($code === '') {
            $code = match ($class) {
                Unavailable::class => 'unavailable',
                RateLimited::class => 'rate_limited',
                ValidationFailed::class => 'validation_failed',
                InvalidToken::class => 'invalid_token',
                default => 'unexpected_response',
            };
        }
        if ($detail === '') {
            $detail = $class::defaultDetail($status);
        }
        $retryAfter = $response->retryAfter();
        if ($retryAfter === null && ($class === Unavailable::class || is_a($class, RateLimited::class, true))) {
            $retryAfter = $defaultRetryAfter;
        }
        return new $class($code, $detail, $status, $problem, $retryAfter);
    }

    /** The buyer-safe text used when an answer carries no detail. */
    protected static function defaultDetail(int $status): string
    {
        return sprintf('The licence server gave an unexpected answer (HTTP %d).', $status);
    }
}

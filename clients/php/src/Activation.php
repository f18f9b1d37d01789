<?php

declare(strict_types=1);

namespace LicenseGate;

/** The outcome of a successful {@see Client::activate()}; the tokens are already stored. */
final class Activation
{
    public function __construct(
        public readonly Tokens $tokens,
        /** True for a new installation (201), false for the existing one on this domain (200). */
        public readonly bool $created,
        /** The Idempotency-Key the attempt used (keep it to retry the same activation later). */
        public readonly string $idempotencyKey,
    ) {
    }

    public function installationId(): string
    {
        return $this->tokens->installationId;
    }

    /** @return array<string, mixed> the licence block (product, type, support_until, activations_used, domain, install_class...) */
    public function license(): array
    {
        return $this->tokens->license;
    }
}

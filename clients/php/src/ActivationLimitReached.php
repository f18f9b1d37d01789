<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * All the licence's slots are in use (409 activation_limit_reached). The
 * problem lists the installations holding them, domains masked, so the
 * buyer can recognise which one to deactivate.
 */
class ActivationLimitReached extends LicenseGateException
{
    /**
     * The installations holding the slots, each as
     * `['domain' => 'b***r.com', 'label' => ?string, 'created_at' => ?string, 'last_seen_at' => ?string]`
     * (the gateway may send plain domain strings; they are normalised to this shape).
     *
     * @return list<array{domain: string, label: ?string, created_at: ?string, last_seen_at: ?string}>
     */
    public function activations(): array
    {
        $out = [];
        foreach (is_array($this->problem['activations'] ?? null) ? $this->problem['activations'] : [] as $entry) {
            if (is_string($entry)) {
                $out[] = ['domain' => $entry, 'label' => null, 'created_at' => null, 'last_seen_at' => null];
            } elseif (is_array($entry) && isset($entry['domain']) && is_string($entry['domain'])) {
                $out[] = [
                    'domain' => $entry['domain'],
                    'label' => isset($entry['label']) && is_string($entry['label']) ? $entry['label'] : null,
                    'created_at' => isset($entry['created_at']) && is_string($entry['created_at']) ? $entry['created_at'] : null,
                    'last_seen_at' => isset($entry['last_seen_at']) && is_string($entry['last_seen_at']) ? $entry['last_seen_at'] : null,
                ];
            }
        }
        return $out;
    }

    /** @return list<string> the (masked) domains holding the slots */
    public function domains(): array
    {
        return array_map(static fn (array $a): string => $a['domain'], $this->activations());
    }
}

<?php

declare(strict_types=1);

namespace LicenseGate;

/** A field was missing or invalid (422 validation_failed); `errors()` maps fields to messages. */
class ValidationFailed extends LicenseGateException
{
    /** @return array<string, list<string>> field => messages, e.g. ['domain' => ['is required']] */
    public function errors(): array
    {
        $out = [];
        foreach (is_array($this->problem['errors'] ?? null) ? $this->problem['errors'] : [] as $field => $messages) {
            $list = is_array($messages) ? $messages : [$messages];
            $out[(string) $field] = array_values(array_map('strval', array_filter($list, 'is_scalar')));
        }
        return $out;
    }

    protected static function defaultDetail(int $status): string
    {
        return 'Some fields are missing or invalid.';
    }
}

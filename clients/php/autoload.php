<?php

declare(strict_types=1);

// For products that ship without Composer: require this file instead of
// vendor/autoload.php. It maps the LicenseGate\ namespace to src/ (PSR-4),
// exactly as composer.json does.
spl_autoload_register(static function (string $class): void {
    $prefix = 'LicenseGate\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

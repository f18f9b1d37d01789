<?php

declare(strict_types=1);

// Runs the suite without `composer install`: the package's own PSR-4
// autoloader, plus one for the test namespace.
require __DIR__ . '/../autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'LicenseGate\\Tests\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

error_reporting(E_ALL);

<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Tokens in the product's own database (SQLite, MySQL/MariaDB, PostgreSQL),
 * one row per store name:
 *
 *     CREATE TABLE licensegate_tokens (
 *         name VARCHAR(191) PRIMARY KEY, data TEXT NULL,
 *         lock_seq INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0)
 *
 * (createTable() runs it). The lock is the row itself: withLock() opens a
 * transaction whose first statement updates the row, which holds InnoDB's
 * and PostgreSQL's row lock, or SQLite's write lock, until the commit, so
 * workers on every server sharing the database refresh once. The PDO
 * connection must be in ERRMODE_EXCEPTION (PHP 8's default).
 */
final class PdoTokenStore implements TokenStore
{
    private int $depth = 0;
    private readonly string $driver;

    public function __construct(
        private readonly \PDO $pdo,
        private readonly string $name = 'default',
        private readonly string $table = 'licensegate_tokens',
        private readonly float $lockTimeout = 30.0,
    ) {
        if (!preg_match('/^[A-Za-z_][A-Za-z0-9_]*$/', $table)) {
            throw new \InvalidArgumentException('licensegate token store: invalid table name');
        }
        $this->driver = (string) $pdo->getAttribute(\PDO::ATTR_DRIVER_NAME);
        if ($this->driver === 'sqlite') {
            // Waiting writers retry for up to the lock timeout instead of
            // failing at once with "database is locked".
            $pdo->exec('PRAGMA busy_timeout = ' . (int) ($lockTimeout * 1000));
        }
    }

    public function createTable(): void
    {
        $this->pdo->exec("CREATE TABLE IF NOT EXISTS {$this->table} (
            name VARCHAR(191) NOT NULL PRIMARY KEY,
            data TEXT NULL,
            lock_seq INTEGER NOT NULL DEFAULT 0,
            updated_at INTEGER NOT NULL DEFAULT 0
        )");
    }

    public function load(): ?Tokens
    {
        $stmt = $this->pdo->prepare("SELECT data FROM {$this->table} WHERE name = ?");
        $stmt->execute([$this->name]);
        $data = $stmt->fetchColumn();
        $stmt->closeCursor();
        if (!is_string($data) || $data === '') {
            return null;
        }
        $decoded = json_decode($data, true, 16, JSON_THROW_ON_ERROR);
        return is_array($decoded) ? Tokens::fromArray($decoded) : null;
    }

    public function save(Tokens $tokens): void
    {
        $json = json_encode($tokens->toArray(), JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        $this->withLock(function () use ($json): void {
            $stmt = $this->pdo->prepare("UPDATE {$this->table} SET data = ?, updated_at = ? WHERE name = ?");
            $stmt->execute([$json, time(), $this->name]);
        });
    }

    public function clear(): void
    {
        $this->withLock(function (): void {
            $stmt = $this->pdo->prepare("UPDATE {$this->table} SET data = NULL, updated_at = ? WHERE name = ?");
            $stmt->execute([time(), $this->name]);
        });
    }

    public function withLock(callable $fn): mixed
    {
        if ($this->depth > 0) {
            $this->depth++;
            try {
                return $fn();
            } finally {
                $this->depth--;
            }
        }
        // Inside the caller's own transaction the row lock lasts until the
        // caller commits; otherwise this store owns the transaction.
        $own = !$this->pdo->inTransaction();
        try {
            if ($own) {
                $this->pdo->beginTransaction();
            }
            if ($this->driver === 'pgsql') {
                $this->pdo->exec("SET LOCAL lock_timeout = '" . (int) ($this->lockTimeout * 1000) . "ms'");
            }
            $this->lockRow();
        } catch (\PDOException $e) {
            if ($own && $this->pdo->inTransaction()) {
                $this->pdo->rollBack();
            }
            throw LockTimeout::after($this->lockTimeout, $e);
        }
        $this->depth = 1;
        try {
            $result = $fn();
        } catch (\Throwable $e) {
            // Commit what $fn saved before failing: tokens a refresh already
            // received must not be rolled back (the old refresh token is spent).
            $this->depth = 0;
            if ($own) {
                $this->finish();
            }
            throw $e;
        }
        $this->depth = 0;
        if ($own) {
            $this->pdo->commit();
        }
        return $result;
    }

    /** Takes the row's write lock, creating the row first if needed. */
    private function lockRow(): void
    {
        $update = $this->pdo->prepare("UPDATE {$this->table} SET lock_seq = lock_seq + 1 WHERE name = ?");
        $update->execute([$this->name]);
        if ($update->rowCount() > 0) {
            return;
        }
        $sql = match ($this->driver) {
            'sqlite' => "INSERT OR IGNORE INTO {$this->table} (name, data, lock_seq, updated_at) VALUES (?, NULL, 0, ?)",
            'mysql' => "INSERT IGNORE INTO {$this->table} (name, data, lock_seq, updated_at) VALUES (?, NULL, 0, ?)",
            'pgsql' => "INSERT INTO {$this->table} (name, data, lock_seq, updated_at) VALUES (?, NULL, 0, ?) ON CONFLICT (name) DO NOTHING",
            default => "INSERT INTO {$this->table} (name, data, lock_seq, updated_at) VALUES (?, NULL, 0, ?)",
        };
        try {
            $this->pdo->prepare($sql)->execute([$this->name, time()]);
        } catch (\PDOException) {
            // Another worker created it first (drivers without an
            // "ignore" insert); its lock is taken below.
        }
        $update->execute([$this->name]);
    }

    private function finish(): void
    {
        try {
            $this->pdo->commit();
        } catch (\PDOException) {
            if ($this->pdo->inTransaction()) {
                $this->pdo->rollBack();
            }
        }
    }
}

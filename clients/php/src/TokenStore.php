<?php

declare(strict_types=1);

namespace LicenseGate;

/**
 * Where an installation keeps its tokens. It holds what {@see Tokens} holds
 * and nothing else: never the purchase code.
 *
 * withLock() is the cross-process lock that makes concurrent workers
 * refresh once: the client re-reads the store inside it and refreshes only
 * when no other worker already did. It must be reentrant within a process;
 * save() and clear() must be atomic (a reader sees the old tokens or the
 * new ones, never a mix).
 */
interface TokenStore
{
    public function load(): ?Tokens;

    public function save(Tokens $tokens): void;

    public function clear(): void;

    /**
     * Runs $fn holding the store's exclusive lock (across processes and
     * servers sharing the store) and returns its result.
     *
     * @template T
     * @param callable(): T $fn
     * @return T
     * @throws LockTimeout when the lock is not obtained in time
     */
    public function withLock(callable $fn): mixed;
}

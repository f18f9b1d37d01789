// Package redis is the store.Store for several gateway instances sharing
// one Redis: standalone, Sentinel or Cluster, through go-redis's
// UniversalClient. The client belongs to the caller; a Store only adds key
// layout, scripts and transactions on top of it.
//
// # Key layout
//
// P is Options.KeyPrefix ("lg:" by default). Every key one operation
// touches atomically shares a {hash tag}, so each transaction and script
// stays within one Cluster slot.
//
//	P{<licence>}:state     string  JSON {"license":…,"installations":[…]}: a
//	                               licence's whole state, the unit UpdateLicense
//	                               changes (WATCH/GET/MULTI/SET/EXEC)
//	Pinsb:<bucket>         hash    installation id -> licence id (installation
//	                               index), the installation's bucket being 4 hex
//	                               digits of a hash of its id (installindex.go);
//	                               Pins:<installation>, a string key per
//	                               installation, is the layout before, read
//	                               and moved by the licence's next write
//	P{due}                 zset    licence id scored by NextCheckAt in unix ms
//	                               (rounded up); absent when NextCheckAt is zero
//	P{due}:v               hash    licence id -> licence version the due entry
//	                               reflects, so a late index write never
//	                               undoes a newer one
//	Prf:{<family>}         hash    cur: the family's current token hash,
//	                               rec: JSON RefreshFamily (one record per
//	                               family, overwritten by each rotation); the
//	                               key expires at ExpiresAt + 24h
//	P{licenses}            zset    every licence id, score 0 (lexical order for
//	                               the admin listing's cursor)
//	P{audit}               stream  append-only audit events (store.Ledger)
//	P{<licence>}:ob, :obq  hash, zset  the licence's outbox entries and queue,
//	                               written in the change's MULTI/EXEC
//	P{<licence>}:audit     list    the licence's latest audit events, newest
//	                               first, at most store.MaxTimeline compact
//	                               records (timeline.go), written in the
//	                               change's MULTI/EXEC
//	P{outbox}…             zsets   outbox index, log, failed, queued
//	                               (pending), the pending count (outbox.go)
//	P{lease:<name>}        hash    holder, token, expires (unix ms): a lease
//	                               (store.Scheduler); never expires, so its
//	                               token count survives every holder
//	Pterm:<term>           zset    licence ids a lookup term finds, score 0
//	                               (lookup.go); Pterm:queue:<name> are the
//	                               review queues (store/queue.go)
//	Pdaily:<YYYY-MM-DD>    hash    series -> count for one UTC day, expiring
//	                               store.DailyRetention after its last write
//	Pversions:<product>    hash    version -> active installations on it, at
//	                               most store.MaxVersions fields and "other";
//	                               written in the licence's MULTI/EXEC
//	                               (versions.go)
//	Pstatus                hash    "license:<status>", "installation:<status>",
//	                               "locked" -> count, written in the licence's
//	                               MULTI/EXEC (statuses.go)
//	Pkeys                  hash    kid -> JSON SigningKey
//	Pidem:<key>            string  stored answer, expiring with its TTL
//	Pchanges               pub/sub channel of JSON store.Change
//
// # What is atomic
//
// With a plain client (standalone or Sentinel) one MULTI/EXEC commits a
// licence's state, its installation-index entries, its due-index entry, the
// audit events written with it (LicenseState.Events, also queued in its outbox) and the change notice
// together. On Cluster the index keys and the audit stream live in other
// slots than the licence, so the transaction commits the state, the keys
// that happen to share its slot and the notice (PUBLISH has no key); the
// other installation-index entries, the due entry and the audit events are
// written right after EXEC, in one pipeline. For the indexes that is safe
// because installation ids never change (the entry is written before
// UpdateLicense returns, so before the caller hands the id out, and a stale
// one still names the right licence) and because the due entry is
// versioned (see dueScript). If those writes fail after the commit,
// UpdateLicense reports ErrUnavailable although the state was committed;
// the next write of the licence repairs both indexes, since every write
// re-asserts them, but an audit event of that write is lost: on Cluster
// the audit log is only as atomic as that one pipeline. (A state key
// deleted by hand restarts at version 1: delete its field in P{due}:v
// too.) In both modes the change notice is part of the transaction, so it
// is sent exactly when a write commits.
//
// Records are stored as given: what arrives sealed (KeyCiphertext,
// SealedPrivateKey, idempotency answers) stays sealed, refresh tokens are
// known only by their keyed hashes, and nothing is logged.
//
// Refresh tokens: a family is one key, its id the hash tag, and a rotation
// is one compare-and-set script on it (rotateScript).
//
// # Failures
//
// Every Redis failure other than a missing key (redis.Nil) is returned
// wrapping store.ErrUnavailable, after at most Options.Timeout per call,
// unless the caller went away first: a call whose context the caller
// cancelled, or whose own deadline passed, returns that context's error
// (context.Canceled or context.DeadlineExceeded), which does not wrap
// store.ErrUnavailable: a gone caller is not an outage. Only the store's own
// Options.Timeout, and go-redis's read and write timeouts, count as Redis
// not answering.
// For the timeout to also bound a server that stops answering (rather than
// one that refuses connections), build the client with
// ContextTimeoutEnabled: true; otherwise go-redis's own ReadTimeout and
// WriteTimeout (3 s by default) apply to a blocked socket.
package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// Defaults for Options.
const (
	DefaultKeyPrefix = "lg:"
	DefaultTimeout   = 2 * time.Second
)

// Optimistic transactions (WATCH) that lose to another instance are
// retried after a jittered backoff, up to maxAttempts.
const (
	maxAttempts = 20
	baseBackoff = time.Millisecond
	maxBackoff  = 50 * time.Millisecond
)

// stripes is the number of in-process locks licences are spread over.
const stripes = 256

// Options tunes a Store.
type Options struct {
	// KeyPrefix is put in front of every key and the change channel, so
	// several deployments can share one Redis. Default "lg:".
	KeyPrefix string
	// Timeout bounds each operation, retries and waiting for this
	// instance's other updates of the same licence included. Default 2s.
	// It bounds a server that stops answering only if the client was built
	// with ContextTimeoutEnabled.
	Timeout time.Duration
}

// Store is a store.Store on Redis. It is safe for concurrent use; create
// one per client and key prefix and share it.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	// locks serialise this process's updates of one licence (and of the
	// key ring), so its own goroutines queue instead of failing each
	// other's WATCH; other instances are still fenced by WATCH.
	locks [stripes]chan struct{}

	mu       sync.Mutex
	subs     map[*redis.PubSub]struct{}
	closed   bool
	repaired time.Time // when ClaimOutbox last re-derived the outbox index
	// queuedBuilt: the keyspace's :queued holds the entries pending
	// before it existed (backfillQueued ran, here or elsewhere).
	queuedBuilt bool
	// backfill serialises this process's backfillQueued runs.
	backfill sync.Mutex
}

// New returns a Store using client. The client stays the caller's: Close
// does not close it.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	s := &Store{client: client, prefix: opts.KeyPrefix, timeout: opts.Timeout, subs: make(map[*redis.PubSub]struct{})}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	return s
}

// Close ends the subscriptions this Store started (their channels close).
// The client is left open.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ps := range s.subs {
		_ = ps.Close()
		delete(s.subs, ps)
	}
	return nil
}

// Keys.

func (s *Store) stateKey(licenseID string) string { return s.prefix + "{" + licenseID + "}:state" }
func (s *Store) dueKey() string                   { return s.prefix + "{due}" }
func (s *Store) dueVersionsKey() string           { return s.prefix + "{due}:v" }
func (s *Store) signingKeysKey() string           { return s.prefix + "keys" }
func (s *Store) idempotencyKey(key string) string { return s.prefix + "idem:" + key }
func (s *Store) channel() string                  { return s.prefix + "changes" }
func (s *Store) licensesKey() string              { return s.prefix + "{licenses}" }
func (s *Store) auditKey() string                 { return s.prefix + "{audit}" }
func (s *Store) leaseKey(name string) string      { return s.prefix + "{lease:" + name + "}" }

// sameSlot reports whether one transaction may hold both keys: always with
// a plain client, when they hash to one slot on Cluster, and only for a
// single key with any other client (a Ring shards differently).
func (s *Store) sameSlot(a, b string) bool {
	switch s.client.(type) {
	case *redis.Client:
		return true
	case *redis.ClusterClient:
		return keySlot(a) == keySlot(b)
	default:
		return a == b
	}
}

// Errors and timeouts.

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

// errTimedOut is the cause withTimeout gives a context whose own deadline
// (Options.Timeout) passed: Redis did not answer in time, an outage.
var errTimedOut = errors.New("redis did not answer within the store's timeout")

// callerGone returns ctx's error when the caller ended it (cancelled it, or
// its own deadline passed), and nil while ctx is live or only withTimeout's
// deadline ended it. ctx is the caller's or one withTimeout derived from it.
func callerGone(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		// A socket deadline set from ctx's can fire before ctx's own timer
		// does: wait for it, to know whose deadline it was.
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if ctx.Err() == nil || errors.Is(context.Cause(ctx), errTimedOut) {
		return nil
	}
	return ctx.Err()
}

// failed classifies err from a Redis call made under ctx: a caller that went
// away gets its context's error (context.Canceled, or DeadlineExceeded for
// its own deadline), which is not store.ErrUnavailable; anything else,
// this store's own timeout included, wraps store.ErrUnavailable.
func failed(ctx context.Context, op string, err error) error {
	if gone := callerGone(ctx); gone != nil {
		return fmt.Errorf("%s: %w", op, gone)
	}
	return unavailable(op, err)
}

// lockFailed classifies a failure to take the in-process lock (lock): the
// caller's going away, or this store's timeout spent queueing behind this
// instance's other updates (store.ErrConflict).
func lockFailed(ctx context.Context, op string, err error) error {
	if gone := callerGone(ctx); gone != nil {
		return fmt.Errorf("%s: %w", op, gone)
	}
	return fmt.Errorf("%s: waiting for this instance's other updates: %w: %w", op, store.ErrConflict, err)
}

var errWatchSkipped = errors.New("the client ended the transaction without running it")

// errAbort carries an error that is not a Redis failure (fn's own error, a
// state that cannot be written) out of a transaction untouched.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }

// withTimeout bounds one operation by Options.Timeout; callerGone tells
// that deadline (an outage) from the caller's own end.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
}

// lock takes the in-process lock for name, giving up when ctx ends.
func (s *Store) lock(ctx context.Context, name string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(name))
	l := s.locks[h.Sum32()%stripes]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// transact runs fn in WATCH key ... EXEC, again while another client wins
// the race, and classifies the outcome: fn's own errors (errAbort) come
// back unwrapped, a caller that went away gets its context's error, losing
// every attempt is store.ErrConflict, and any other failure wraps
// store.ErrUnavailable. ctx must carry the operation's deadline
// (withTimeout); the caller holds the in-process lock for key.
func (s *Store) transact(ctx context.Context, op, key string, fn func(*redis.Tx) error) error {
	for attempt := 1; ; attempt++ {
		ran := false
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			ran = true
			return nil
		}, key)
		if err == nil && !ran {
			// ClusterClient.Watch (go-redis v9.23) answers nil without
			// running fn when its last attempt met a closed node pool.
			err = errWatchSkipped
		}
		var abort errAbort
		switch {
		case err == nil:
			return nil
		case errors.As(err, &abort):
			return abort.err
		case !errors.Is(err, redis.TxFailedErr):
			return failed(ctx, op, err)
		case attempt == maxAttempts:
			return fmt.Errorf("%s: lost %d races to other instances: %w", op, attempt, store.ErrConflict)
		}
		backoff := min(maxBackoff, baseBackoff<<(attempt-1))
		t := time.NewTimer(rand.N(backoff) + time.Millisecond/2)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if gone := callerGone(ctx); gone != nil {
				return fmt.Errorf("%s: %w", op, gone)
			}
			return fmt.Errorf("%s: lost %d races to other instances: %w: %w", op, attempt, store.ErrConflict, ctx.Err())
		}
	}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return failed(ctx, "pinging redis", err)
	}
	return nil
}

// Persistence says how Redis keeps what it was told across a restart,
// from CONFIG GET appendonly and save: "aof", "rdb", "aof+rdb", "none"
// (a restart loses every installation a 201 promised), or "unknown" when
// CONFIG is refused (managed services often rename or forbid it). A
// connection error is returned as such.
func (s *Store) Persistence(ctx context.Context) (string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var aofCmd, saveCmd *redis.MapStringStringCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		aofCmd, saveCmd = p.ConfigGet(ctx, "appendonly"), p.ConfigGet(ctx, "save")
		return nil
	})
	if rerr := redis.Error(nil); errors.As(err, &rerr) {
		return store.PersistenceUnknown, nil // CONFIG refused: a reply, not an outage
	}
	if err != nil {
		return "", failed(ctx, "reading redis persistence", err)
	}
	aof, rdb := aofCmd.Val()["appendonly"] == "yes", strings.TrimSpace(saveCmd.Val()["save"]) != ""
	switch {
	case aof && rdb:
		return "aof+rdb", nil
	case aof:
		return "aof", nil
	case rdb:
		return "rdb", nil
	}
	return store.PersistenceNone, nil
}

// Interface guards
var _ store.Store = (*Store)(nil)

// Package embedded is the single-instance Store on a bbolt file: no server
// to run, transactions serialised by bbolt, changes announced in-process.
//
// One file per concern, as in store/redis: license.go (licence states and
// the installation index), due.go (the recheck index by NextCheckAt),
// refresh.go, keys.go, idempotency.go, feed.go (the change feed), ledger.go
// (listing and the audit log), janitor.go (sweeping what Redis would
// expire), counters.go (per-day counters), versions.go (installed
// versions per product), timeline.go (each licence's audit timeline) and
// statuses.go (licences and installations by status). Time comes from the clock given with WithClock.
//
// # Failures
//
// A failure of the file (closed, I/O) wraps store.ErrUnavailable. A caller
// that went away is not one: a call whose context ended before it, or
// during a read, returns the context's error, and a write whose context
// ended before its commit is rolled back and returns it too.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

var (
	bucketLicenses      = []byte("licenses")
	bucketInstallations = []byte("installations")    // licence id -> []Installation
	bucketInstallIndex  = []byte("install_index")    // installation id -> licence id
	bucketRefresh       = []byte("refresh_families") // family id -> RefreshFamily
	bucketKeys          = []byte("signing_keys")
	bucketIdempotency   = []byte("idempotency")
	bucketDue           = []byte("due")            // "<next check, sortable>|<licence id>" -> nil
	bucketAudit         = []byte("audit")          // sequence (16 hex digits) -> AuditEvent
	bucketLeases        = []byte("leases")         // lease name -> store.Lease
	bucketOutbox        = []byte("outbox")         // id (16 hex digits) -> OutboxEntry
	bucketOutboxPending = []byte("outbox_pending") // id -> licence id ("" for none)
	bucketOutboxFailed  = []byte("outbox_failed")  // id -> nothing: the failed entries

	// bucketLegacyRefresh held one record per refresh token ever issued;
	// Open deletes it.
	bucketLegacyRefresh = []byte("refresh_tokens")
)

// Store is a bbolt-backed store.Store. Open one per file and share it: bbolt
// holds an exclusive lock on the file.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu   sync.Mutex
	subs map[chan store.Change]struct{}

	commits committer // group commit of writes (commit.go)

	closeOnce sync.Once
	stop      chan struct{} // closed by Close: ends the janitor
	swept     chan struct{} // closed when the janitor has ended
}

// Option adjusts a Store at Open.
type Option func(*Store)

// WithClock sets the clock that expires idempotency answers and drives the
// janitor's sweeps (default time.Now), so tests need not wait for expiry.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// Open opens (creating if needed) the store file at path. It gives up after
// timeout when another process holds the file.
func Open(path string, timeout time.Duration, opts ...Option) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("opening embedded store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// A file written before the failed index existed gets it now,
		// once (indexFailed), in the transaction that creates it.
		backfill := tx.Bucket(bucketOutboxFailed) == nil
		for _, b := range [][]byte{bucketLicenses, bucketInstallations, bucketInstallIndex, bucketRefresh, bucketKeys, bucketIdempotency, bucketDue, bucketAudit, bucketOutbox, bucketOutboxPending, bucketOutboxFailed, bucketLeases, bucketLookup, bucketAsks, bucketDaily, bucketDailyDays, bucketVersions, bucketTimeline, bucketStatus} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if backfill {
			if err := indexFailed(tx); err != nil {
				return err
			}
		}
		if err := freeLeases(tx); err != nil {
			return err
		}
		if tx.Bucket(bucketLegacyRefresh) != nil {
			return tx.DeleteBucket(bucketLegacyRefresh)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising embedded store %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now, subs: make(map[chan store.Change]struct{}), stop: make(chan struct{}), swept: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	go s.janitor()
	return s, nil
}

// Close closes the file. Subscribers' channels are closed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.swept
	s.mu.Lock()
	for ch := range s.subs {
		delete(s.subs, ch)
		close(ch)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Path returns the file's path.
func (s *Store) Path() string { return s.db.Path() }

// errClosed is the cause for calls after Close.
var errClosed = errors.New("store closed")

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

func getJSON(b *bolt.Bucket, key string, v any) (bool, error) {
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}

// viewJSON decodes the record at key in bucket into v, in a read
// transaction for ctx's caller (see view); found is false when there is none.
func (s *Store) viewJSON(ctx context.Context, op string, bucket []byte, key string, v any) (found bool, err error) {
	err = s.view(ctx, op, func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bucket), key, v)
		return err
	})
	return found, err
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// errAbort carries fn's own error out of a bbolt transaction untouched.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }

// view runs fn in a read transaction for ctx's caller. A caller that went
// away, before the read or during it, gets its context's error instead of
// what was read.
func (s *Store) view(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	err := ctx.Err()
	if err == nil {
		err = s.db.View(fn)
	}
	if err == nil {
		err = ctx.Err()
	}
	return outcome(ctx, op, err)
}

// update runs fn in a write transaction for ctx's caller and commits only
// if the caller is still there once fn is done: one that went away gets its
// context's error and nothing is written. It returns once the commit is on
// disk.
//
// The transaction may be shared with concurrent writes (group commit, see
// commit.go), so fn may run more than once, on a transaction that is then
// rolled back: each run must decide from what it reads in tx and set
// everything it hands back to its caller afresh, never build on what an
// earlier run left in its captured variables.
func (s *Store) update(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	err := ctx.Err()
	if err == nil {
		err = s.commit(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return ctx.Err()
		})
	}
	return outcome(ctx, op, err)
}

// outcome classifies a transaction's error: fn's own (errAbort) comes back
// untouched; a caller that went away gets its context's error
// (context.Canceled or context.DeadlineExceeded), which is not
// store.ErrUnavailable: a gone caller is not a store failure; anything else
// (the file closed, I/O) wraps store.ErrUnavailable.
func outcome(ctx context.Context, op string, err error) error {
	var abort errAbort
	switch {
	case err == nil:
		return nil
	case errors.As(err, &abort):
		return abort.err
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	default:
		return unavailable(op, err)
	}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, "pinging", func(*bolt.Tx) error { return nil })
}

// Interface guards
var (
	_ store.Store  = (*Store)(nil)
	_ store.Ledger = (*Store)(nil)
)

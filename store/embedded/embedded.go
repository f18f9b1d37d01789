// Package embedded is the single-instance Store on a bbolt file: no server
// to run, transactions serialised by bbolt, changes announced in-process.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

var (
	bucketLicenses      = []byte("licenses")
	bucketInstallations = []byte("installations") // licence id -> []Installation
	bucketInstallIndex  = []byte("install_index") // installation id -> licence id
	bucketRefresh       = []byte("refresh_tokens")
	bucketKeys          = []byte("signing_keys")
	bucketIdempotency   = []byte("idempotency")
	bucketDue           = []byte("due")   // "<next check, sortable>|<licence id>" -> nil
	bucketAudit         = []byte("audit") // sequence (16 hex digits) -> AuditEvent
)

// Store is a bbolt-backed store.Store. Open one per file and share it: bbolt
// holds an exclusive lock on the file.
type Store struct {
	db *bolt.DB

	mu   sync.Mutex
	subs map[chan store.Change]struct{}

	closeOnce sync.Once
	stop      chan struct{} // closed by Close: ends the janitor
	swept     chan struct{} // closed when the janitor has ended
}

// Open opens (creating if needed) the store file at path. It gives up after
// timeout when another process holds the file.
func Open(path string, timeout time.Duration) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("opening embedded store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLicenses, bucketInstallations, bucketInstallIndex, bucketRefresh, bucketKeys, bucketIdempotency, bucketDue, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising embedded store %s: %w", path, err)
	}
	s := &Store{db: db, subs: make(map[chan store.Change]struct{}), stop: make(chan struct{}), swept: make(chan struct{})}
	go s.janitor()
	return s, nil
}

// sweepInterval is how often expired records are deleted.
const sweepInterval = time.Hour

// janitor deletes expired refresh tokens and idempotency answers, which
// Redis expires by TTL, until Close.
func (s *Store) janitor() {
	defer close(s.swept)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_, _ = s.Sweep(time.Now()) // a failed sweep is retried next time; nothing waits on it
		}
	}
}

// refreshGrace keeps an expired refresh token's record a day longer, so a
// replay just after expiry is still recognised (as Redis does).
const refreshGrace = 24 * time.Hour

// Sweep deletes refresh-token records expired before now (less a day's
// grace) and idempotency answers past their TTL; it returns how many.
func (s *Store) Sweep(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if n, err = sweepBucket(tx.Bucket(bucketRefresh), func(v []byte) bool {
			var rt store.RefreshToken
			return json.Unmarshal(v, &rt) == nil && !rt.ExpiresAt.IsZero() && now.After(rt.ExpiresAt.Add(refreshGrace))
		}); err != nil {
			return err
		}
		m, err := sweepBucket(tx.Bucket(bucketIdempotency), func(v []byte) bool {
			var rec idempotent
			return json.Unmarshal(v, &rec) == nil && now.After(rec.ExpiresAt)
		})
		n += m
		return err
	})
	if err != nil {
		return 0, unavailable("sweeping expired records", err)
	}
	return n, nil
}

func sweepBucket(b *bolt.Bucket, expired func([]byte) bool) (int, error) {
	var dead [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if expired(v) {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
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

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

func readState(tx *bolt.Tx, licenseID string) (*store.LicenseState, error) {
	st := &store.LicenseState{}
	var lic store.License
	found, err := getJSON(tx.Bucket(bucketLicenses), licenseID, &lic)
	if err != nil {
		return nil, err
	}
	if found {
		st.License = &lic
	}
	if _, err := getJSON(tx.Bucket(bucketInstallations), licenseID, &st.Installations); err != nil {
		return nil, err
	}
	return st, nil
}

// LicenseState implements store.Store.
func (s *Store) LicenseState(_ context.Context, licenseID string) (*store.LicenseState, error) {
	var st *store.LicenseState
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		st, err = readState(tx, licenseID)
		return err
	})
	if err != nil {
		return nil, unavailable("reading licence", err)
	}
	return st, nil
}

// errAbort carries fn's own error out of a bbolt transaction untouched.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }

// UpdateLicense implements store.Store. fn runs once on a read snapshot
// and, when it returns a state to write, once more under bbolt's writer
// lock, which serialises writers: the second decision is the one stored.
func (s *Store) UpdateLicense(ctx context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	// Most refusals write nothing: decide them on a read snapshot, without
	// the write transaction's fsync. Only a state to write is decided
	// again, atomically, under the writer lock.
	if st, done, err := s.readOnlyDecision(licenseID, fn); done {
		return st, err
	}
	return s.updateLicense(ctx, licenseID, fn)
}

// readOnlyDecision runs fn on a snapshot; done when fn wrote nothing or
// failed.
func (s *Store) readOnlyDecision(licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, bool, error) {
	var cur *store.LicenseState
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		cur, err = readState(tx, licenseID)
		return err
	})
	if err != nil {
		return nil, true, unavailable("updating licence", err)
	}
	snapshot := *cur
	if cur.License != nil {
		lic := *cur.License
		snapshot.License = &lic
	}
	snapshot.Installations = append([]store.Installation(nil), cur.Installations...)
	next, err := fn(&snapshot)
	if err != nil {
		return nil, true, err
	}
	if next == nil {
		return cur, true, nil
	}
	return nil, false, nil
}

func (s *Store) updateLicense(_ context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	var written *store.LicenseState
	var wrote bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur, err := readState(tx, licenseID)
		if err != nil {
			return err
		}
		// fn may edit cur: remember what is stored before it runs.
		var prev store.License
		if cur.License != nil {
			prev = *cur.License
		}
		next, err := fn(cur)
		if err != nil {
			return errAbort{err}
		}
		if next == nil {
			written = cur
			return nil
		}
		if err := writeState(tx, licenseID, prev, next); err != nil {
			return err
		}
		written, wrote = next, true
		return nil
	})
	var abort errAbort
	if errors.As(err, &abort) {
		return nil, abort.err
	}
	if err != nil {
		return nil, unavailable("updating licence", err)
	}
	if wrote { // nothing changed when fn wrote nothing: no notice
		s.publish(store.Change{LicenseID: licenseID})
	}
	return written, nil
}

// writeState stores st over prev (the stored licence, zero when new).
func writeState(tx *bolt.Tx, licenseID string, prev store.License, st *store.LicenseState) error {
	if st.License == nil {
		return errors.New("state to write has no licence")
	}
	if err := reindexDue(tx, licenseID, prev.NextCheckAt, st.License); err != nil {
		return err
	}
	st.License.Version = prev.Version + 1
	if err := putJSON(tx.Bucket(bucketLicenses), licenseID, st.License); err != nil {
		return err
	}
	if err := putJSON(tx.Bucket(bucketInstallations), licenseID, st.Installations); err != nil {
		return err
	}
	idx := tx.Bucket(bucketInstallIndex)
	for _, in := range st.Installations {
		if err := idx.Put([]byte(in.ID), []byte(licenseID)); err != nil {
			return err
		}
	}
	return nil
}

// dueKey sorts by time: fixed-width UTC nanoseconds.
func dueKey(at time.Time, licenseID string) []byte {
	return []byte(fmt.Sprintf("%020d|%s", at.UTC().UnixNano(), licenseID))
}

func reindexDue(tx *bolt.Tx, licenseID string, oldNext time.Time, lic *store.License) error {
	b := tx.Bucket(bucketDue)
	if !oldNext.IsZero() {
		if err := b.Delete(dueKey(oldNext, licenseID)); err != nil {
			return err
		}
	}
	if lic.NextCheckAt.IsZero() {
		return nil
	}
	return b.Put(dueKey(lic.NextCheckAt, licenseID), nil)
}

// DueLicenses implements store.Store.
func (s *Store) DueLicenses(_ context.Context, before time.Time, limit int) ([]string, error) {
	var ids []string
	end := dueKey(before, "\xff")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			if string(k) > string(end) {
				break
			}
			_, id, _ := strings.Cut(string(k), "|")
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("reading due licences", err)
	}
	return ids, nil
}

// InstallationLicense implements store.Store.
func (s *Store) InstallationLicense(_ context.Context, installationID string) (string, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketInstallIndex).Get([]byte(installationID)))
		return nil
	})
	if err != nil {
		return "", unavailable("reading installation index", err)
	}
	if id == "" {
		return "", store.ErrNotFound
	}
	return id, nil
}

// PutRefreshToken implements store.Store.
func (s *Store) PutRefreshToken(_ context.Context, rt store.RefreshToken) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketRefresh), rt.Hash, rt)
	})
	if err != nil {
		return unavailable("storing refresh token", err)
	}
	return nil
}

// RefreshToken implements store.Store.
func (s *Store) RefreshToken(_ context.Context, hash string) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bucketRefresh), hash, &rt)
		return err
	})
	if err != nil {
		return nil, unavailable("reading refresh token", err)
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return &rt, nil
}

// SpendRefreshToken implements store.Store.
func (s *Store) SpendRefreshToken(_ context.Context, hash string, at time.Time, next store.RefreshToken) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRefresh)
		found, err := getJSON(b, hash, &rt)
		if err != nil {
			return err
		}
		if !found {
			return errAbort{store.ErrNotFound}
		}
		if !rt.SpentAt.IsZero() {
			return errAbort{store.ErrRefreshSpent}
		}
		rt.SpentAt = at
		if err := putJSON(b, hash, rt); err != nil {
			return err
		}
		return putJSON(b, next.Hash, next)
	})
	var abort errAbort
	if errors.As(err, &abort) {
		if errors.Is(abort.err, store.ErrRefreshSpent) {
			return &rt, abort.err
		}
		return nil, abort.err
	}
	if err != nil {
		return nil, unavailable("spending refresh token", err)
	}
	return &rt, nil
}

func readKeys(tx *bolt.Tx) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
		var k store.SigningKey
		if err := json.Unmarshal(v, &k); err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].CreatedAt.Before(keys[j].CreatedAt) })
	return keys, err
}

// SigningKeys implements store.Store.
func (s *Store) SigningKeys(_ context.Context) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		return err
	})
	if err != nil {
		return nil, unavailable("reading signing keys", err)
	}
	return keys, nil
}

// AddSigningKey implements store.Store.
func (s *Store) AddSigningKey(_ context.Context, k store.SigningKey, notBefore time.Time) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	added := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		if err != nil {
			return err
		}
		if n := len(keys); n > 0 && keys[n-1].CreatedAt.After(notBefore) {
			return nil // another writer added a fresh key first
		}
		if err := putJSON(tx.Bucket(bucketKeys), k.ID, k); err != nil {
			return err
		}
		keys = append(keys, k)
		added = true
		return nil
	})
	if err != nil {
		return nil, unavailable("adding signing key", err)
	}
	if added {
		s.publish(store.Change{Keys: true})
	}
	return keys, nil
}

type idempotent struct {
	Value     []byte    `json:"value"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Idempotent implements store.Store.
func (s *Store) Idempotent(_ context.Context, key string) ([]byte, error) {
	var rec idempotent
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bucketIdempotency), key, &rec)
		return err
	})
	if err != nil {
		return nil, unavailable("reading idempotency record", err)
	}
	if !found || time.Now().After(rec.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	return rec.Value, nil
}

// PutIdempotent implements store.Store.
func (s *Store) PutIdempotent(_ context.Context, key string, value []byte, ttl time.Duration) ([]byte, error) {
	stored := value
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdempotency)
		var rec idempotent
		found, err := getJSON(b, key, &rec)
		if err != nil {
			return err
		}
		if found && time.Now().Before(rec.ExpiresAt) {
			stored = rec.Value
			return nil
		}
		return putJSON(b, key, idempotent{Value: value, ExpiresAt: time.Now().Add(ttl)})
	})
	if err != nil {
		return nil, unavailable("storing idempotency record", err)
	}
	return stored, nil
}

// Subscribe implements store.Store: changes are announced in-process, to
// every app sharing this file (old and new config during a reload).
func (s *Store) Subscribe(ctx context.Context) (<-chan store.Change, error) {
	ch := make(chan store.Change, 256)
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		return nil, unavailable("subscribing", errClosed)
	default:
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		// Close closes the channel itself; this goroutine must not outlive it.
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}()
	return ch, nil
}

func (s *Store) publish(c store.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- c:
		default: // a subscriber that cannot keep up relies on its cache TTL
		}
	}
}

// Ping implements store.Store.
func (s *Store) Ping(context.Context) error {
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return unavailable("pinging", err)
	}
	return nil
}

// ListLicenses implements store.Ledger.
func (s *Store) ListLicenses(_ context.Context, after string, limit int) ([]*store.LicenseState, error) {
	var out []*store.LicenseState
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLicenses).Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			st, err := readState(tx, string(k))
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("listing licences", err)
	}
	return out, nil
}

// AppendAudit implements store.Ledger.
func (s *Store) AppendAudit(_ context.Context, ev store.AuditEvent) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev.ID = fmt.Sprintf("%016x", seq)
		return putJSON(b, ev.ID, ev)
	})
	if err != nil {
		return unavailable("appending audit event", err)
	}
	return nil
}

// Audit implements store.Ledger.
func (s *Store) Audit(_ context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	if q.After != "" && !auditCursor.MatchString(q.After) {
		return nil, store.ErrBadCursor
	}
	var out []store.AuditEvent
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && string(k) == q.After {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < q.Limit; k, v = c.Next() {
			var ev store.AuditEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if !q.Since.IsZero() && ev.At.Before(q.Since) {
				continue
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("reading audit log", err)
	}
	return out, nil
}

// auditCursor is the shape of the ids AppendAudit assigns.
var auditCursor = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Interface guards
var (
	_ store.Store  = (*Store)(nil)
	_ store.Ledger = (*Store)(nil)
)

package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/store/storetest"
)

func open(t *testing.T, opts ...embedded.Option) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite every backend passes. The change feed is
// in-process, so there is no second handle to test it across: bbolt locks
// the file for one handle.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) },
		storetest.WithBreak(func(t *testing.T, s store.Store) {
			if err := s.(*embedded.Store).Close(); err != nil {
				t.Fatal(err)
			}
		}),
		storetest.WithRecordCount(func(t *testing.T, s store.Store, family string) int {
			n, err := embedded.CountKeys(s.(*embedded.Store), family)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}),
		storetest.WithCorruptOutbox(func(t *testing.T, s store.Store, id string) {
			if err := embedded.CorruptOutbox(s.(*embedded.Store), id); err != nil {
				t.Fatal(err)
			}
		}),
	)
}

func put(t *testing.T, s *embedded.Store, st *store.LicenseState) {
	t.Helper()
	if _, err := s.UpdateLicense(context.Background(), st.License.ID, func(*store.LicenseState) (*store.LicenseState, error) { return st, nil }); err != nil {
		t.Fatalf("UpdateLicense: %v", err)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lg.db")
	s, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != path {
		t.Errorf("Path = %s, want %s", s.Path(), path)
	}
	put(t, s, &store.LicenseState{
		License:       &store.License{ID: "lic_1", Status: store.LicenseActive},
		Installations: []store.Installation{{ID: "ins_1", LicenseID: "lic_1"}, {ID: "ins_2", LicenseID: "lic_1"}},
	})
	if err := s.PutRefreshFamily(context.Background(), store.RefreshFamily{ID: "f", Current: "h1"}); err != nil {
		t.Fatal(err)
	}

	// The file is locked while open.
	if _, err := embedded.Open(path, 50*time.Millisecond); err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := s2.LicenseState(context.Background(), "lic_1")
	if err != nil || st.License == nil || len(st.Installations) != 2 {
		t.Fatalf("after reopen: %+v, %v", st, err)
	}
	if f, err := s2.RefreshFamily(context.Background(), "f"); err != nil || f.Current != "h1" {
		t.Fatalf("refresh family lost across reopen: %+v, %v", f, err)
	}
	if lic, err := s2.InstallationLicense(context.Background(), "ins_2"); err != nil || lic != "lic_1" {
		t.Fatalf("installation index after reopen = %q, %v", lic, err)
	}
}

// TestReopenAfterAKill: a process that dies holding the recheck lease and
// with a check still asked for leaves the file to its successor, which
// takes the lease at once (the file lock proves the holder gone), with a
// higher fencing token, and still finds the ask.
func TestReopenAfterAKill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lg.db")
	now := time.Now()
	s, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held, err := s.AcquireLease(ctx, "recheck", "dead-instance", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AskCheck(ctx, "lic_1", now); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // as a kill: the lease is not released
		t.Fatal(err)
	}
	s2, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.AcquireLease(ctx, "recheck", "successor", now, time.Hour)
	if err != nil || got.Token <= held.Token {
		t.Fatalf("successor's AcquireLease = %+v, %v; want the lease with a token above %d", got, err, held.Token)
	}
	if asks, err := s2.Asked(ctx, 10); err != nil || len(asks) != 1 || asks[0].LicenseID != "lic_1" {
		t.Fatalf("asks after reopen = %+v, %v; want lic_1's", asks, err)
	}
}

// A decision that writes nothing runs fn once, on a snapshot, and takes no
// write transaction; one that writes runs fn again under the writer lock.
func TestUpdateLicenseDecidesReadOnlyFirst(t *testing.T) {
	s := open(t)
	calls := 0
	write := func(st *store.LicenseState) (*store.LicenseState, error) {
		calls++
		if st.License == nil {
			st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
		}
		return st, nil
	}
	if _, err := s.UpdateLicense(context.Background(), "lic_1", write); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("a writing fn ran %d times, want 2 (snapshot, then writer)", calls)
	}
	calls = 0
	st, err := s.UpdateLicense(context.Background(), "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		calls++
		st.License.Status = store.LicenseSuspended // edits to the snapshot must not leak
		return nil, nil
	})
	if err != nil || calls != 1 {
		t.Fatalf("a read-only fn ran %d times, %v", calls, err)
	}
	if st.License.Status != store.LicenseActive {
		t.Fatalf("returned state %q, want the stored one", st.License.Status)
	}
}

func TestCloseClosesSubscribers(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("value after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed by Close")
	}
	// Cancelling afterwards does not close it twice.
	cancel()
	time.Sleep(10 * time.Millisecond)
	if _, err := s.Subscribe(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Subscribe after Close = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v, want ErrUnavailable", err)
	}
}

// t0 is the embedded tests' clock reading: their stores' clock reads the
// variable a test sets (only the test's goroutine uses it: the janitor
// sweeps hourly).
var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func TestSweepDeletesExpiredRecords(t *testing.T) {
	now := t0
	s := open(t, embedded.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	put := func(id string, expires time.Time) {
		if err := s.PutRefreshFamily(ctx, store.RefreshFamily{ID: id, Current: "h", ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}
	put("old", now.Add(-48*time.Hour)) // expired beyond the grace
	put("recent", now.Add(-time.Hour)) // expired within the grace: kept
	put("live", now.Add(time.Hour))
	if _, err := s.PutIdempotent(ctx, "idem-old", []byte("x"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIdempotent(ctx, "idem-live", []byte("y"), time.Hour); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5 * time.Millisecond)
	n, err := s.Sweep(now)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 (one family, one answer)", n, err)
	}
	if _, err := s.RefreshFamily(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired family kept: %v", err)
	}
	for _, id := range []string{"recent", "live"} {
		if _, err := s.RefreshFamily(ctx, id); err != nil {
			t.Fatalf("%s swept: %v", id, err)
		}
	}
	if v, err := s.Idempotent(ctx, "idem-live"); err != nil || string(v) != "y" {
		t.Fatalf("live answer swept: %q, %v", v, err)
	}
}

// A sweep over many more records than one batch deletes every expired one
// and keeps every live one, whatever the batch boundaries.
func TestSweepInBatches(t *testing.T) {
	now := t0
	s := open(t, embedded.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	const n = 1000 // several batches
	for i := range n {
		exp := now.Add(time.Hour)
		if i%3 != 0 {
			exp = now.Add(-48 * time.Hour)
		}
		if err := s.PutRefreshFamily(ctx, store.RefreshFamily{ID: fmt.Sprintf("fam%04d", i), Current: "h", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Sweep(now)
	if want := n - (n+2)/3; err != nil || got != want {
		t.Fatalf("Sweep = %d, %v; want %d", got, err, want)
	}
	for i := range n {
		_, err := s.RefreshFamily(ctx, fmt.Sprintf("fam%04d", i))
		if live := i%3 == 0; live != (err == nil) {
			t.Fatalf("fam%04d: live %v, read %v", i, live, err)
		}
	}
	if again, err := s.Sweep(now); err != nil || again != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", again, err)
	}
}

// Open drops the per-token refresh records an earlier version kept.
func TestOpenDropsLegacyRefreshRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lg.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("refresh_tokens"))
		if err != nil {
			return err
		}
		return b.Put([]byte("fam.hash"), []byte(`{"hash":"fam.hash"}`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := embedded.CountKeys(s, "fam"); err != nil || n != 0 {
		t.Fatalf("%d legacy records kept, %v", n, err)
	}
}

// Idempotency answers expire by the injected clock, not the wall clock.
func TestIdempotencyExpiresByClock(t *testing.T) {
	now := t0
	s := open(t, embedded.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	if _, err := s.PutIdempotent(ctx, "k", []byte("first"), time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute - time.Nanosecond)
	if v, err := s.PutIdempotent(ctx, "k", []byte("second"), time.Minute); err != nil || string(v) != "first" {
		t.Fatalf("PutIdempotent within the TTL = %q, %v; want the stored answer", v, err)
	}
	now = now.Add(2 * time.Nanosecond)
	if _, err := s.Idempotent(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Idempotent past the TTL = %v, want ErrNotFound", err)
	}
	if v, err := s.PutIdempotent(ctx, "k", []byte("second"), time.Minute); err != nil || string(v) != "second" {
		t.Fatalf("PutIdempotent after the TTL = %q, %v; want the new answer", v, err)
	}
}

// TestOpenIndexesFailedOutboxEntries: a file written before the failed
// outbox entries had their index gets it at Open, once, so they are
// listed and counted as failed; the index then follows retries.
func TestOpenIndexesFailedOutboxEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lg.db")
	s, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		lic := fmt.Sprintf("lic_%d", i)
		put(t, s, &store.LicenseState{
			License: &store.License{ID: lic, Status: store.LicenseActive},
			Events:  []store.AuditEvent{{Action: store.AuditLicenseLocked, LicenseID: lic, At: at}},
		})
	}
	es, err := s.ClaimOutbox(ctx, at, time.Minute, 10)
	if err != nil || len(es) != 5 {
		t.Fatalf("ClaimOutbox: %d, %v", len(es), err)
	}
	var failed []string
	for i, e := range es {
		e.Status, e.DoneAt = []string{store.OutboxFailed, store.OutboxDelivered, store.OutboxPending}[i%3], at
		if e.Status == store.OutboxFailed {
			failed = append(failed, e.ID)
		}
		if err := s.SettleOutbox(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := embedded.DropFailedIndex(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	listed := func() []string {
		t.Helper()
		got, next, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
		if err != nil || next != "" {
			t.Fatalf("failed entries: %v, %q", err, next)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got := listed(); fmt.Sprint(got) != fmt.Sprint(failed) {
		t.Fatalf("failed entries after Open %v, want %v", got, failed)
	}
	if n, err := s.OutboxFailed(ctx); err != nil || n != int64(len(failed)) {
		t.Errorf("OutboxFailed = %d, %v; want %d", n, err, len(failed))
	}
	if err := s.RetryOutbox(ctx, failed[0], at); err != nil {
		t.Fatal(err)
	}
	if got := listed(); fmt.Sprint(got) != fmt.Sprint(failed[1:]) {
		t.Errorf("failed entries after a retry %v, want %v", got, failed[1:])
	}
}

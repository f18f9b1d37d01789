package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// claim calls ClaimDue and fails the test on an error.
func claim(t *testing.T, s store.Store, now time.Time, limit int, claimFor time.Duration) []string {
	t.Helper()
	ids, err := s.ClaimDue(context.Background(), now, limit, claimFor)
	if err != nil {
		t.Fatalf("ClaimDue: %v", err)
	}
	return ids
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// seedDue stores five licences, due in the order b, c, a, e; d has no
// NextCheckAt.
func seedDue(t *testing.T, s store.Store) {
	for id, at := range map[string]time.Duration{"lic_a": 3 * time.Hour, "lic_b": time.Hour, "lic_c": 2 * time.Hour, "lic_d": 0, "lic_e": 5 * time.Hour} {
		st := license(id)
		if at != 0 {
			st.License.NextCheckAt = t0.Add(at)
		}
		put(t, s, st)
	}
}

// farFuture is after every NextCheckAt the suite sets; parked is after
// farFuture (see drain).
var (
	farFuture = t0.Add(1000 * time.Hour)
	parked    = farFuture.Add(1000 * time.Hour)
)

// drain claims every licence due at now and parks what it claimed at
// parked, so the next drain, at a later now, hands out only what fell due
// in between: drains at rising times read the due index in order through
// the claims the recheck makes, with no listing method.
func drain(t *testing.T, s store.Store, now time.Time) []string {
	t.Helper()
	return claim(t, s, now, 100, parked.Sub(now))
}

// scheduled counts the due index's entries, without claiming any.
func scheduled(t *testing.T, s store.Store) int64 {
	t.Helper()
	st, err := s.DueStats(context.Background(), farFuture)
	if err != nil {
		t.Fatalf("DueStats: %v", err)
	}
	return st.Scheduled
}

// testDueOrder: claims hand out the licences whose NextCheckAt is not
// after the claim's time (to the millisecond), earliest first, at most
// limit; licences due at the same instant all come out.
func testDueOrder(t *testing.T, h *harness) {
	s := h.open(t)
	wantIDs(t, "empty store", drain(t, s, farFuture))
	seedDue(t, s)
	wantIDs(t, "before everything", drain(t, s, t0))
	wantIDs(t, "limit 0", claim(t, s, farFuture, 0, time.Minute))
	wantIDs(t, "all", drain(t, s, farFuture), "lic_b", "lic_c", "lic_a", "lic_e")

	s = h.open(t)
	seedDue(t, s)
	wantIDs(t, "just before", drain(t, s, t0.Add(2*time.Hour-time.Millisecond)), "lic_b")
	wantIDs(t, "at, inclusive", drain(t, s, t0.Add(2*time.Hour)), "lic_c")
	wantIDs(t, "limit", claim(t, s, farFuture, 1, parked.Sub(farFuture)), "lic_a")
	wantIDs(t, "the rest", drain(t, s, farFuture), "lic_e")

	s = h.open(t)
	seedDue(t, s)
	tie := license("lic_f")
	tie.License.NextCheckAt = t0.Add(2 * time.Hour)
	put(t, s, tie)
	got := drain(t, s, t0.Add(2*time.Hour))
	if len(got) != 3 || got[0] != "lic_b" || !(got[1] == "lic_c" && got[2] == "lic_f" || got[1] == "lic_f" && got[2] == "lic_c") {
		t.Fatalf("tie: claimed %v, want lic_b then lic_c and lic_f", got)
	}
}

// testDueReindex: the index follows NextCheckAt as updates move it,
// whether fn edits the copy it is given or returns a new state. Each case
// starts from seedDue (b 1h, c 2h, a 3h, e 5h; d none).
func testDueReindex(t *testing.T, h *harness) {
	ctx := context.Background()
	seeded := func() store.Store {
		s := h.open(t)
		seedDue(t, s)
		return s
	}

	// Moving NextCheckAt re-indexes: no entry is left at the old time.
	s := seeded()
	update(t, s, "lic_a", func(st *store.LicenseState) { st.License.NextCheckAt = t0.Add(30 * time.Minute) })
	update(t, s, "lic_b", func(st *store.LicenseState) { st.License.NextCheckAt = t0.Add(6 * time.Hour) })
	wantIDs(t, "old times left", drain(t, s, t0.Add(3*time.Hour)), "lic_a", "lic_c")
	wantIDs(t, "after moves", drain(t, s, farFuture), "lic_e", "lic_b")

	// A zero NextCheckAt leaves the index; setting it joins it.
	s = seeded()
	update(t, s, "lic_c", func(st *store.LicenseState) { st.License.NextCheckAt = time.Time{} })
	update(t, s, "lic_d", func(st *store.LicenseState) { st.License.NextCheckAt = t0.Add(4 * time.Hour) })
	wantIDs(t, "after zero and set", drain(t, s, farFuture), "lic_b", "lic_a", "lic_d", "lic_e")

	// Writes that leave NextCheckAt alone keep one entry; updates that write
	// nothing or fail do not touch the index.
	s = seeded()
	update(t, s, "lic_a", func(st *store.LicenseState) { st.License.Status = store.LicenseFlagged })
	if _, err := s.UpdateLicense(ctx, "lic_e", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.NextCheckAt = time.Time{}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLicense(ctx, "lic_b", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.NextCheckAt = time.Time{}
		return st, errLimit
	}); err != errLimit {
		t.Fatal(err)
	}
	if n := scheduled(t, s); n != 4 {
		t.Fatalf("after no-op writes: %d index entries, want 4", n)
	}
	wantIDs(t, "after no-op writes", drain(t, s, farFuture), "lic_b", "lic_c", "lic_a", "lic_e")

	// A state built from scratch (not the copy fn was given) moves the
	// entry too.
	s = seeded()
	fresh := license("lic_e")
	fresh.License.NextCheckAt = t0.Add(90 * time.Minute)
	put(t, s, fresh)
	wantIDs(t, "after replacing a state", drain(t, s, farFuture), "lic_b", "lic_e", "lic_c", "lic_a")
}

// testClaimDue: ClaimDue hands out due licences earliest first and moves
// them on by claimFor, so asking again at once gets none of them; they are
// due again once the claim has run out, and a write of the licence with its
// real next time takes over from the claim (no entry left behind).
func testClaimDue(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	wantIDs(t, "empty store", claim(t, s, farFuture, 10, time.Minute))
	seedDue(t, s) // b 1h, c 2h, a 3h, e 5h; d none

	wantIDs(t, "limit", claim(t, s, t0.Add(2*time.Hour), 1, 30*time.Minute), "lic_b")
	wantIDs(t, "rest of the due", claim(t, s, t0.Add(2*time.Hour), 10, 30*time.Minute), "lic_c")
	wantIDs(t, "claimed already", claim(t, s, t0.Add(2*time.Hour+29*time.Minute), 10, 30*time.Minute))
	// The claimed entries moved on to 2h30, none left behind.
	if next, err := s.NextDue(ctx); err != nil || !next.Equal(t0.Add(2*time.Hour+30*time.Minute)) {
		t.Fatalf("index after claims: NextDue = %v, %v; want %v", next, err, t0.Add(2*time.Hour+30*time.Minute))
	}
	if n := scheduled(t, s); n != 4 {
		t.Fatalf("index after claims: %d entries, want 4", n)
	}
	wantIDs(t, "limit 0", claim(t, s, farFuture, 0, time.Minute))

	// The claim runs out: due again, earliest first, with what is due now.
	wantIDs(t, "claims run out", claim(t, s, t0.Add(3*time.Hour), 10, time.Hour), "lic_b", "lic_c", "lic_a")

	// The worker writes the result: the entry follows the record, and the
	// claimed time leaves the index.
	update(t, s, "lic_b", func(st *store.LicenseState) { st.License.NextCheckAt = t0.Add(10 * time.Hour) })
	update(t, s, "lic_c", func(st *store.LicenseState) { st.License.NextCheckAt = time.Time{} })
	if n := scheduled(t, s); n != 3 {
		t.Fatalf("index after results: %d entries, want 3 (a, e, b)", n)
	}
	wantIDs(t, "after results", drain(t, s, t0.Add(9*time.Hour)), "lic_a", "lic_e")
	wantIDs(t, "b at its real time", drain(t, s, farFuture), "lic_b")
	if st := read(t, s, "lic_d"); !st.License.NextCheckAt.IsZero() {
		t.Fatalf("lic_d (never due) has NextCheckAt %v", st.License.NextCheckAt)
	}
}

// testConcurrentClaimsNeverShare: claimers racing over one due index (on
// two handles when the backend has peers) each get a licence at most once.
func testConcurrentClaimsNeverShare(t *testing.T, h *harness) {
	s := h.open(t)
	handles := []store.Store{s, s}
	if h.cfg.peer != nil {
		handles[1] = h.cfg.peer(t, s)
	}
	const n = 60
	for i := range n {
		st := license(fmt.Sprintf("lic_%03d", i))
		st.License.NextCheckAt = t0.Add(time.Duration(i) * time.Second)
		put(t, s, st)
	}
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ids, err := handles[w%2].ClaimDue(context.Background(), t0.Add(time.Hour), 4, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				got = append(got, ids...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ClaimDue: %v", err)
	}
	sort.Strings(got)
	if len(got) != n {
		t.Fatalf("%d claims of %d licences: %v", len(got), n, got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("%s claimed twice", got[i])
		}
	}
}

// testDueStats: the index's size, what is due and the oldest entry.
func testDueStats(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	st, err := s.DueStats(ctx, farFuture)
	if err != nil || st.Scheduled != 0 || st.Due != 0 || !st.Oldest.IsZero() {
		t.Fatalf("empty store: %+v, %v", st, err)
	}
	if next, err := s.NextDue(ctx); err != nil || !next.IsZero() {
		t.Fatalf("NextDue of an empty index = %v, %v; want zero", next, err)
	}
	seedDue(t, s)
	st, err = s.DueStats(ctx, t0.Add(2*time.Hour))
	if err != nil || st.Scheduled != 4 || st.Due != 2 || !st.Oldest.Equal(t0.Add(time.Hour)) {
		t.Fatalf("DueStats = %+v, %v; want 4 scheduled, 2 due, oldest %v", st, err, t0.Add(time.Hour))
	}
	if next, err := s.NextDue(ctx); err != nil || !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("NextDue = %v, %v; want %v", next, err, t0.Add(time.Hour))
	}
}

// testLeases: one holder at a time; the same holder keeps its token when
// it asks again; another gets the lease only once it expired or was
// released, with a higher token; a holder whose lease ran out cannot renew.
func testLeases(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	const ttl = 30 * time.Second
	a, err := s.AcquireLease(ctx, "recheck", "a", t0, ttl)
	if err != nil || a.Holder != "a" || a.Token < 1 || !a.Expires.Equal(t0.Add(ttl)) || a.Name != "recheck" {
		t.Fatalf("first AcquireLease = %+v, %v", a, err)
	}
	held, err := s.AcquireLease(ctx, "recheck", "b", t0.Add(ttl-time.Millisecond), ttl)
	if !errors.Is(err, store.ErrLeaseHeld) || held.Holder != "a" || held.Token != a.Token {
		t.Fatalf("AcquireLease by b while a holds = %+v, %v; want ErrLeaseHeld naming a", held, err)
	}
	if other, err := s.AcquireLease(ctx, "webhooks", "b", t0, ttl); err != nil || other.Holder != "b" {
		t.Fatalf("another lease's name = %+v, %v", other, err)
	}
	again, err := s.AcquireLease(ctx, "recheck", "a", t0.Add(10*time.Second), ttl)
	if err != nil || again.Token != a.Token || !again.Expires.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("AcquireLease by the holder = %+v, %v; want its token extended", again, err)
	}
	renewed, err := s.RenewLease(ctx, again, t0.Add(20*time.Second), ttl)
	if err != nil || renewed.Token != a.Token || !renewed.Expires.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("RenewLease = %+v, %v", renewed, err)
	}

	// a stops renewing: b takes over once the lease expired.
	expired := t0.Add(50 * time.Second)
	b, err := s.AcquireLease(ctx, "recheck", "b", expired, ttl)
	if err != nil || b.Holder != "b" || b.Token <= a.Token {
		t.Fatalf("AcquireLease after expiry = %+v, %v; want b with a token above %d", b, err, a.Token)
	}
	if _, err := s.RenewLease(ctx, renewed, expired, ttl); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("RenewLease by the old holder = %v, want ErrLeaseLost", err)
	}
	// An expired lease is not renewed either, even unclaimed.
	if _, err := s.RenewLease(ctx, b, expired.Add(ttl), ttl); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("RenewLease after expiry = %v, want ErrLeaseLost", err)
	}
	b2, err := s.AcquireLease(ctx, "recheck", "b", expired.Add(ttl), ttl)
	if err != nil || b2.Token <= b.Token {
		t.Fatalf("re-acquiring an expired lease = %+v, %v; want a token above %d", b2, err, b.Token)
	}

	// Release: a no-op for anyone but the holder, then free at once.
	if err := s.ReleaseLease(ctx, renewed); err != nil {
		t.Fatalf("ReleaseLease by a non-holder: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "recheck", "a", expired.Add(ttl), ttl); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("a released b's lease: %v", err)
	}
	if err := s.ReleaseLease(ctx, b2); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	a3, err := s.AcquireLease(ctx, "recheck", "a", expired.Add(ttl), ttl)
	if err != nil || a3.Token <= b2.Token {
		t.Fatalf("AcquireLease after release = %+v, %v; want a token above %d", a3, err, b2.Token)
	}
}

// testConcurrentLeaseHasOneHolder: holders racing for a free lease at one
// instant: exactly one gets it.
func testConcurrentLeaseHasOneHolder(t *testing.T, h *harness) {
	s := h.open(t)
	handles := []store.Store{s, s}
	if h.cfg.peer != nil {
		handles[1] = h.cfg.peer(t, s)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []store.Lease
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := handles[i%2].AcquireLease(context.Background(), "recheck", fmt.Sprintf("h%d", i), t0, time.Minute)
			if err == nil {
				mu.Lock()
				winners = append(winners, l)
				mu.Unlock()
			} else if !errors.Is(err, store.ErrLeaseHeld) {
				t.Errorf("AcquireLease: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 || winners[0].Token != 1 {
		t.Fatalf("winners %+v, want one with token 1", winners)
	}
}

// testFencedWrites: a write under a lease token lower than one the licence
// was written under is refused and changes nothing (no audit event, no
// notice); a write under no token (an author's) is not fenced and leaves
// the fence as it was.
func testFencedWrites(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	put(t, s, license("lic_1"))
	write := func(token int64, status string) (*store.LicenseState, error) {
		return s.UpdateLicense(ctx, "lic_1", store.Fenced(token, func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License.Status = status
			st.Events = []store.AuditEvent{{At: t0, Actor: "gateway", Action: "license." + status, LicenseID: "lic_1"}}
			return st, nil
		}))
	}
	feed := subscribe(t, s)
	if st, err := write(5, store.LicenseFlagged); err != nil || st.License.Fence != 5 {
		t.Fatalf("write under token 5 = %+v, %v", st, err)
	}
	noticesUntil(t, feed, "lic_1")
	if announced(settle(t, s, feed, "lic_sentinel0"), "lic_1") {
		t.Fatal("one write announced twice")
	}
	if _, err := write(3, store.LicenseSuspended); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("write under token 3 after 5 = %v, want ErrFenced", err)
	}
	if st := read(t, s, "lic_1"); st.License.Status != store.LicenseFlagged || st.License.Fence != 5 {
		t.Fatalf("after a fenced write: %+v", st.License)
	}
	if announced(settle(t, s, feed, "lic_sentinel"), "lic_1") {
		t.Fatal("a fenced write was announced")
	}
	if st, err := write(0, store.LicenseActive); err != nil || st.License.Fence != 5 || st.License.Status != store.LicenseActive {
		t.Fatalf("author write = %+v, %v; want it written, fence 5", st, err)
	}
	if st, err := write(5, store.LicenseFlagged); err != nil || st.License.Fence != 5 {
		t.Fatalf("the holder's next write = %+v, %v", st, err)
	}
	if st, err := write(7, store.LicenseActive); err != nil || st.License.Fence != 7 {
		t.Fatalf("a later holder's write = %+v, %v", st, err)
	}
	evs, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
	}
	wantIDs(t, "audit", actions, "license.flagged", "license.active", "license.flagged", "license.active")
}

// testAuditWithUpdate: the events a write carries are appended with it, in
// order; a write that writes nothing or fails appends none; the state read
// back holds none.
func testAuditWithUpdate(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	put(t, s, license("lic_1"))
	evs := []store.AuditEvent{
		{At: t0, Actor: "gateway", Action: store.AuditLicenseSuspended, LicenseID: "lic_1", Reason: "refunded"},
		{At: t0, Actor: "gateway", Action: "recheck.guard_tripped", Detail: "envato"},
	}
	st, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Status = store.LicenseSuspended
		st.Events = evs
		return st, nil
	})
	if err != nil || len(st.Events) != 0 {
		t.Fatalf("UpdateLicense = %+v, %v", st, err)
	}
	for _, fn := range []store.UpdateFunc{
		func(st *store.LicenseState) (*store.LicenseState, error) { st.Events = evs; return nil, nil },
		func(st *store.LicenseState) (*store.LicenseState, error) { st.Events = evs; return st, errLimit },
	} {
		if _, err := s.UpdateLicense(ctx, "lic_1", fn); err != nil && err != errLimit {
			t.Fatal(err)
		}
	}
	got, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("audit log holds %d events, want 2: %+v", len(got), got)
	}
	for i := range got {
		if got[i].ID == "" {
			t.Errorf("event %d has no id", i)
		}
		got[i].ID = ""
		if !reflect.DeepEqual(got[i], evs[i]) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], evs[i])
		}
	}
	if st := read(t, s, "lic_1"); len(st.Events) != 0 || st.License.Status != store.LicenseSuspended {
		t.Fatalf("state read back: %+v", st)
	}
}

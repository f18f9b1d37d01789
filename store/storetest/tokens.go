package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// tokenHash stands in for a token's keyed hash, as the gateway computes it.
func tokenHash(family string, n int) string {
	return fmt.Sprintf("%s.%064x", family, n)
}

// family returns a fresh family record whose current token is number 0.
func family(id string, issued time.Time) store.RefreshFamily {
	return store.RefreshFamily{
		ID: id, InstallationID: "ins_1", LicenseID: "lic_1", Generation: 3,
		Current: tokenHash(id, 0), IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
	}
}

// rotated is f after the rotation of its current token to token n at at.
func rotated(f store.RefreshFamily, n int, at time.Time) store.RefreshFamily {
	next := f
	next.Previous, next.PreviousSpentAt = f.Current, at
	next.Current, next.Counter = tokenHash(f.ID, n), f.Counter+1
	next.IssuedAt, next.ExpiresAt = at, at.Add(time.Hour)
	next.SealedSuccessor = []byte(fmt.Sprintf("sealed\x00answer %d", n))
	return next
}

func testRefreshFamilies(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	issued := now()
	first := family("famA", issued)
	if err := s.PutRefreshFamily(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := s.RefreshFamily(ctx, first.ID)
	if err != nil || !reflect.DeepEqual(*got, first) {
		t.Fatalf("RefreshFamily = %+v, %v; want %+v", got, err, first)
	}
	for _, id := range []string{"famB", "famA.x", ""} {
		if _, err := s.RefreshFamily(ctx, id); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("RefreshFamily(%q) = %v, want ErrNotFound", id, err)
		}
	}

	// A rotation replaces the record and returns the one it replaced.
	at := issued.Add(time.Minute + time.Nanosecond)
	second := rotated(first, 1, at)
	rec, err := s.RotateRefreshFamily(ctx, first.Current, second)
	if err != nil || !reflect.DeepEqual(*rec, first) {
		t.Fatalf("first rotation = %+v, %v; want the replaced record %+v", rec, err, first)
	}
	if got, err := s.RefreshFamily(ctx, first.ID); err != nil || !reflect.DeepEqual(*got, second) {
		t.Fatalf("after rotation = %+v, %v; want %+v", got, err, second)
	}

	tests := []struct {
		name    string
		current string
		next    store.RefreshFamily
		wantErr error
	}{
		{"spent token", first.Current, rotated(second, 9, at.Add(time.Minute)), store.ErrRefreshSpent},
		{"never current", tokenHash("famA", 99), rotated(second, 9, at.Add(time.Minute)), store.ErrRefreshSpent},
		{"unknown family", tokenHash("famZ", 0), rotated(family("famZ", issued), 1, at), store.ErrNotFound},
		{"no family id", "", store.RefreshFamily{}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := s.RotateRefreshFamily(ctx, tt.current, tt.next)
			if !errors.Is(err, tt.wantErr) || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == store.ErrRefreshSpent {
				if rec == nil || !reflect.DeepEqual(*rec, second) {
					t.Fatalf("record = %+v, want the stored one %+v", rec, second)
				}
			} else if rec != nil {
				t.Fatalf("record %+v returned for an unknown family", rec)
			}
			if got, err := s.RefreshFamily(ctx, "famA"); err != nil || !reflect.DeepEqual(*got, second) {
				t.Fatalf("a refused rotation changed the record to %+v, %v", got, err)
			}
			if _, err := s.RefreshFamily(ctx, "famZ"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused rotation created a family: %v", err)
			}
		})
	}

	// The successor rotates in turn; a family's rotations never touch
	// another family.
	other := family("famB", issued)
	if err := s.PutRefreshFamily(ctx, other); err != nil {
		t.Fatal(err)
	}
	third := rotated(second, 2, at.Add(2*time.Minute))
	if rec, err := s.RotateRefreshFamily(ctx, second.Current, third); err != nil || !reflect.DeepEqual(*rec, second) {
		t.Fatalf("rotating the successor = %+v, %v", rec, err)
	}
	if got, _ := s.RefreshFamily(ctx, "famB"); got == nil || !reflect.DeepEqual(*got, other) {
		t.Fatalf("famB changed to %+v", got)
	}

	// Put replaces a record of the same id (a fresh start of a family).
	restart := family("famA", at)
	if err := s.PutRefreshFamily(ctx, restart); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RefreshFamily(ctx, "famA"); err != nil || !reflect.DeepEqual(*got, restart) {
		t.Fatalf("after Put over a family = %+v, %v; want %+v", got, err, restart)
	}

	// Delete removes one family; deleting one that is gone is no error.
	for range 2 {
		if err := s.DeleteRefreshFamily(ctx, "famA"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RefreshFamily(ctx, "famA"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted family = %v, want ErrNotFound", err)
	}
	if _, err := s.RefreshFamily(ctx, "famB"); err != nil {
		t.Fatalf("deleting famA took famB: %v", err)
	}
}

// testConcurrentRotationOnlyOneWins rotates one token from many callers:
// one replaces the record; every other is told ErrRefreshSpent with the
// winner's record, whose Previous is the token they held (what the reuse
// grace needs to hand them the winner's answer).
// A write's Families are stored with its state (LicenseState.Families):
// readable once UpdateLicense returns, never part of a state read, and
// not stored by a write that writes nothing.
func testRefreshFamiliesWithState(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	fam := family("famS", now())
	st, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		next := license("lic_1")
		next.Families = []store.RefreshFamily{fam}
		return next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Families) != 0 {
		t.Errorf("the state written has families: %+v", st.Families)
	}
	got, err := s.RefreshFamily(ctx, fam.ID)
	if err != nil || !reflect.DeepEqual(*got, fam) {
		t.Fatalf("RefreshFamily = %+v, %v; want %+v", got, err, fam)
	}
	if st, err := s.LicenseState(ctx, "lic_1"); err != nil || len(st.Families) != 0 {
		t.Errorf("a state read = %+v, %v; want no families", st, err)
	}
	unwritten := family("famU", now())
	if _, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Families = []store.RefreshFamily{unwritten}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshFamily(ctx, unwritten.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a family of a write that wrote nothing: %v, want ErrNotFound", err)
	}
}

func testConcurrentRotationOnlyOneWins(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	tok := family("fam", now())
	if err := s.PutRefreshFamily(ctx, tok); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	winner, spent := -1, 0
	var losers []*store.RefreshFamily
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := s.RotateRefreshFamily(ctx, tok.Current, rotated(tok, i, now()))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				if winner != -1 {
					t.Errorf("rotations %d and %d both won", winner, i)
				}
				winner = i
			case errors.Is(err, store.ErrRefreshSpent):
				spent++
				losers = append(losers, rec)
			default:
				t.Errorf("rotation: %v", err)
			}
		}()
	}
	wg.Wait()
	if winner == -1 || spent != n-1 {
		t.Fatalf("winner %d and %d refused, want one winner and %d refused", winner, spent, n-1)
	}
	stored, err := s.RefreshFamily(ctx, "fam")
	if err != nil || stored.Current != tokenHash("fam", winner) || stored.Previous != tok.Current || stored.Counter != 1 {
		t.Fatalf("stored family = %+v, %v; want the winner's (%d)", stored, err, winner)
	}
	for _, rec := range losers {
		if rec == nil || !reflect.DeepEqual(*rec, *stored) {
			t.Fatalf("a loser was told %+v, want the winner's record %+v", rec, stored)
		}
	}
}

// rotations is how many times testRefreshFamilyStaysOneRecord rotates one
// family: an installation refreshing hourly for a year and more.
const rotations = 10_000

// testRefreshFamilyStaysOneRecord rotates one family many times: the
// backend still holds one record for it.
func testRefreshFamilyStaysOneRecord(t *testing.T, h *harness) {
	if h.cfg.count == nil {
		t.Skip("the backend offers no way to count its records (WithRecordCount)")
	}
	ctx := context.Background()
	s := h.open(t)
	f := family("famLong", now())
	if err := s.PutRefreshFamily(ctx, f); err != nil {
		t.Fatal(err)
	}
	if n := h.cfg.count(t, s, f.ID); n != 1 {
		t.Fatalf("%d records for a new family, want 1", n)
	}
	for i := 1; i <= rotations; i++ {
		next := rotated(f, i, f.IssuedAt.Add(time.Second))
		if _, err := s.RotateRefreshFamily(ctx, f.Current, next); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		f = next
	}
	if n := h.cfg.count(t, s, f.ID); n != 1 {
		t.Fatalf("%d records after %d rotations, want 1", n, rotations)
	}
	if got, err := s.RefreshFamily(ctx, f.ID); err != nil || got.Counter != rotations || got.Current != f.Current {
		t.Fatalf("family after %d rotations = %+v, %v", rotations, got, err)
	}
}

func signingKey(id string, created time.Time) store.SigningKey {
	return store.SigningKey{ID: id, Algorithm: "EdDSA", PublicKey: []byte(id), SealedPrivateKey: []byte("sealed-" + id), CreatedAt: created}
}

func keyIDs(keys []store.SigningKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

func testSigningKeys(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("empty store keys = %v, %v", keys, err)
	}
	steps := []struct {
		name      string
		k         store.SigningKey
		notBefore time.Time
		wantIDs   []string
	}{
		{"first key always added", signingKey("k1", t0), t0.Add(24 * time.Hour), []string{"k1"}},
		{"newest key is newer than notBefore: not added", signingKey("k2", t0.Add(time.Second)), t0.Add(-time.Second), []string{"k1"}},
		{"notBefore equal to newest: added", signingKey("k2", t0.Add(time.Hour)), t0, []string{"k1", "k2"}},
		{"notBefore after newest: added", signingKey("k3", t0.Add(2*time.Hour)), t0.Add(90 * time.Minute), []string{"k1", "k2", "k3"}},
		{"stale rotation: not added", signingKey("k4", t0.Add(3*time.Hour)), t0.Add(time.Hour), []string{"k1", "k2", "k3"}},
		{"a nanosecond matters", signingKey("k4", t0.Add(3*time.Hour)), t0.Add(2*time.Hour - time.Nanosecond), []string{"k1", "k2", "k3"}},
		// Sorted by creation, not by kid or insertion order.
		{"older-created key sorts first", signingKey("a0", t0.Add(-time.Hour)), t0.Add(3 * time.Hour), []string{"a0", "k1", "k2", "k3"}},
		{"kid sorting after others created earlier", signingKey("z9", t0.Add(90*time.Minute)), t0.Add(3 * time.Hour), []string{"a0", "k1", "k2", "z9", "k3"}},
	}
	for _, st := range steps {
		keys, err := s.AddSigningKey(ctx, st.k, st.notBefore)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		stored, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// AddSigningKey's answer holds the ring as stored, though it may
		// list the new key last; SigningKeys lists keys oldest first.
		ids := keyIDs(keys)
		sort.Strings(ids)
		want := append([]string(nil), st.wantIDs...)
		sort.Strings(want)
		if !reflect.DeepEqual(ids, want) {
			t.Fatalf("%s: AddSigningKey returned %v, want %v", st.name, keyIDs(keys), st.wantIDs)
		}
		if got := keyIDs(stored); !reflect.DeepEqual(got, st.wantIDs) {
			t.Fatalf("%s: SigningKeys = %v, want %v", st.name, got, st.wantIDs)
		}
	}
	stored, _ := s.SigningKeys(ctx)
	if !reflect.DeepEqual(stored[1], signingKey("k1", t0)) {
		t.Fatalf("key round trip: %+v", stored[1])
	}
	// Of many instances rotating at once with the same notBefore, exactly
	// one adds a key.
	newest := stored[len(stored)-1].CreatedAt
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := signingKey(fmt.Sprintf("r%d", i), newest.Add(time.Duration(i+1)*time.Minute))
			if _, err := s.AddSigningKey(ctx, k, newest); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	stored, _ = s.SigningKeys(ctx)
	if len(stored) != 6 || !strings.HasPrefix(stored[5].ID, "r") {
		t.Fatalf("after 10 concurrent rotations the ring is %v, want one r* key added", keyIDs(stored))
	}
}

func testIdempotency(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	if _, err := s.Idempotent(ctx, "k"); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("missing key = %v, want ErrNotFound", err)
	}
	got, err := s.PutIdempotent(ctx, "k", []byte("first\x00\xff"), time.Hour)
	if err != nil || string(got) != "first\x00\xff" {
		t.Fatalf("first Put = %q, %v", got, err)
	}
	got, err = s.PutIdempotent(ctx, "k", []byte("second"), time.Hour)
	if err != nil || string(got) != "first\x00\xff" {
		t.Fatalf("second Put = %q, %v; want the first writer's value", got, err)
	}
	if got, err := s.Idempotent(ctx, "k"); err != nil || string(got) != "first\x00\xff" {
		t.Fatalf("Idempotent = %q, %v; want first", got, err)
	}
	if _, err := s.Idempotent(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other key = %v, want ErrNotFound", err)
	}

	// An answer stored already expired is gone and may be replaced.
	if _, err := s.PutIdempotent(ctx, "old", []byte("stale"), -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Idempotent(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired answer = %v, want ErrNotFound", err)
	}
	if got, err := s.PutIdempotent(ctx, "old", []byte("fresh"), time.Hour); err != nil || string(got) != "fresh" {
		t.Fatalf("Put over an expired answer = %q, %v; want fresh", got, err)
	}

	// Concurrent first writers: everyone gets the same answer, which is
	// one of theirs.
	var wg sync.WaitGroup
	answers := make([]string, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.PutIdempotent(ctx, "race", []byte(fmt.Sprint(i)), time.Hour)
			if err != nil {
				t.Error(err)
			}
			answers[i] = string(v)
		}()
	}
	wg.Wait()
	for _, a := range answers {
		if a != answers[0] {
			t.Fatalf("concurrent Puts got different answers: %v", answers)
		}
	}
	if stored, err := s.Idempotent(ctx, "race"); err != nil || string(stored) != answers[0] {
		t.Fatalf("stored race answer %q, %v; callers got %q", stored, err, answers[0])
	}
}

// testIdempotencyExpiry lets a short TTL run out for real.
func testIdempotencyExpiry(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	const ttl = 300 * time.Millisecond
	start := time.Now()
	if _, err := s.PutIdempotent(ctx, "k", []byte("v1"), ttl); err != nil {
		t.Fatal(err)
	}
	got, err := s.Idempotent(ctx, "k")
	if fresh := time.Since(start) < ttl; fresh && (err != nil || string(got) != "v1") {
		t.Fatalf("fresh answer = %q, %v; want v1", got, err)
	}
	for {
		_, err := s.Idempotent(ctx, "k")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > ttl+2*time.Second {
			t.Fatalf("answer with a %s TTL still served after %s", ttl, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gone := time.Since(start); gone < ttl {
		t.Fatalf("answer gone after %s, before its %s TTL", gone, ttl)
	}
	if got, err := s.PutIdempotent(ctx, "k", []byte("v2"), time.Hour); err != nil || string(got) != "v2" {
		t.Fatalf("Put after expiry = %q, %v; want v2", got, err)
	}
}

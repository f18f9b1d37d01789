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

// refreshHash builds a token hash the way the gateway does:
// "<family>.<keyed hash>".
func refreshHash(family string, n int) string {
	return fmt.Sprintf("%s.%064x", family, n)
}

func testRefreshTokens(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	issued := now()
	first := store.RefreshToken{
		Hash: refreshHash("famA", 1), Family: "famA", InstallationID: "ins_1", LicenseID: "lic_1",
		Generation: 3, IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
	}
	if err := s.PutRefreshToken(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := s.RefreshToken(ctx, first.Hash)
	if err != nil || !reflect.DeepEqual(*got, first) {
		t.Fatalf("RefreshToken = %+v, %v; want %+v", got, err, first)
	}
	for _, hash := range []string{refreshHash("famA", 9), refreshHash("famB", 1), "famA", ""} {
		if _, err := s.RefreshToken(ctx, hash); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("RefreshToken(%q) = %v, want ErrNotFound", hash, err)
		}
	}

	// A record stored as spent keeps its spend time.
	spentBefore := first
	spentBefore.Hash, spentBefore.SpentAt = refreshHash("famC", 1), issued.Add(-time.Minute)
	spentBefore.Family = "famC"
	if err := s.PutRefreshToken(ctx, spentBefore); err != nil {
		t.Fatal(err)
	}
	if got, err := s.RefreshToken(ctx, spentBefore.Hash); err != nil || !reflect.DeepEqual(*got, spentBefore) {
		t.Fatalf("spent record = %+v, %v; want %+v", got, err, spentBefore)
	}

	spentAt := issued.Add(time.Minute + time.Nanosecond)
	second := first
	second.Hash, second.IssuedAt, second.ExpiresAt, second.Generation = refreshHash("famA", 2), spentAt, spentAt.Add(time.Hour), 4
	rec, err := s.SpendRefreshToken(ctx, first.Hash, spentAt, second)
	if err != nil {
		t.Fatalf("first spend: %v", err)
	}
	wantSpent := first
	wantSpent.SpentAt = spentAt
	if !reflect.DeepEqual(*rec, wantSpent) {
		t.Fatalf("first spend returned %+v, want %+v", rec, wantSpent)
	}
	if got, err := s.RefreshToken(ctx, second.Hash); err != nil || !reflect.DeepEqual(*got, second) {
		t.Fatalf("successor = %+v, %v; want %+v", got, err, second)
	}
	if got, err := s.RefreshToken(ctx, first.Hash); err != nil || !reflect.DeepEqual(*got, wantSpent) {
		t.Fatalf("spent token stored as %+v, %v; want %+v", got, err, wantSpent)
	}

	third := first
	third.Hash = refreshHash("famA", 3)
	thirdC := spentBefore
	thirdC.Hash = refreshHash("famC", 3)
	tests := []struct {
		name    string
		hash    string
		next    store.RefreshToken
		wantErr error
		wantRec *store.RefreshToken
	}{
		{"spent again", first.Hash, third, store.ErrRefreshSpent, &wantSpent},
		{"stored as spent", spentBefore.Hash, thirdC, store.ErrRefreshSpent, &spentBefore},
		{"unknown", refreshHash("famA", 99), third, store.ErrNotFound, nil},
		{"unknown family", refreshHash("famZ", 1), store.RefreshToken{Hash: refreshHash("famZ", 2), Family: "famZ"}, store.ErrNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := s.SpendRefreshToken(ctx, tt.hash, spentAt.Add(time.Hour), tt.next)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Fatal("reported as unavailable")
			}
			if tt.wantRec != nil {
				if rec == nil || !reflect.DeepEqual(*rec, *tt.wantRec) {
					t.Fatalf("record = %+v, want the stored one %+v", rec, tt.wantRec)
				}
			} else if rec != nil {
				t.Fatalf("record %+v returned for an unknown hash", rec)
			}
			if _, err := s.RefreshToken(ctx, tt.next.Hash); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("successor stored by a refused spend: %v", err)
			}
		})
	}
	// The first spend time is kept.
	if got, _ := s.RefreshToken(ctx, first.Hash); got == nil || !got.SpentAt.Equal(spentAt) {
		t.Fatalf("SpentAt changed to %+v by a second spend", got)
	}

	// The successor spends in turn.
	fourth := second
	fourth.Hash = refreshHash("famA", 4)
	if rec, err := s.SpendRefreshToken(ctx, second.Hash, spentAt.Add(2*time.Minute), fourth); err != nil || rec.Hash != second.Hash {
		t.Fatalf("spending the successor = %+v, %v", rec, err)
	}
	if _, err := s.RefreshToken(ctx, fourth.Hash); err != nil {
		t.Fatalf("second successor: %v", err)
	}
}

func testConcurrentSpendOnlyOneWins(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	issued := now()
	tok := store.RefreshToken{Hash: refreshHash("fam", 0), Family: "fam", IssuedAt: issued, ExpiresAt: issued.Add(time.Hour)}
	if err := s.PutRefreshToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	winner, spent := -1, 0
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := tok
			next.Hash = refreshHash("fam", i)
			_, err := s.SpendRefreshToken(ctx, tok.Hash, now(), next)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				if winner != -1 {
					t.Errorf("spends %d and %d both won", winner, i)
				}
				winner = i
			case errors.Is(err, store.ErrRefreshSpent):
				spent++
			default:
				t.Errorf("spend: %v", err)
			}
		}()
	}
	wg.Wait()
	if winner == -1 || spent != n-1 {
		t.Fatalf("winner %d and %d refused, want one winner and %d refused", winner, spent, n-1)
	}
	for i := 1; i <= n; i++ {
		_, err := s.RefreshToken(ctx, refreshHash("fam", i))
		if stored := err == nil; stored != (i == winner) {
			t.Errorf("successor %d stored: %v (winner %d): %v", i, stored, winner, err)
		}
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

package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

func open(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func ptr(t time.Time) *time.Time { return &t }

func sampleState() *store.LicenseState {
	return &store.LicenseState{
		License: &store.License{
			ID: "lic_1", Product: "converter-pro", Source: "envato", Type: "regular",
			LicensedTo: "buyer", ExpiresAt: ptr(t0.AddDate(1, 0, 0)), SupportUntil: ptr(t0.AddDate(0, 6, 0)),
			Retired: true, ActivationsLimit: 2, Status: store.LicenseFlagged, StatusBy: "recheck",
			Locked: true, KeyCiphertext: []byte{1, 2, 3, 0, 255}, VerifiedAt: t0,
			NextCheckAt: t0.Add(168 * time.Hour), LastMoveAt: t0.Add(-time.Hour),
			CreatedAt: t0.Add(-24 * time.Hour), UpdatedAt: t0,
		},
		Installations: []store.Installation{
			{ID: "ins_1", LicenseID: "lic_1", Product: "converter-pro", Domain: "acme.com", InstallClass: "production",
				Status: store.InstallationActive, Label: "production", IP: "203.0.113.7", ClientIP: "198.51.100.1",
				Generation: 2, CreatedAt: t0, UpdatedAt: t0, LastSeenAt: t0.Add(time.Minute)},
			{ID: "ins_2", LicenseID: "lic_1", Product: "converter-pro", Domain: "localhost", InstallClass: "local",
				Status: store.InstallationDeactivated, CreatedAt: t0, UpdatedAt: t0, DeactivatedAt: t0.Add(time.Hour)},
		},
	}
}

func put(t *testing.T, s *embedded.Store, st *store.LicenseState) *store.LicenseState {
	t.Helper()
	got, err := s.UpdateLicense(context.Background(), st.License.ID, func(*store.LicenseState) (*store.LicenseState, error) { return st, nil })
	if err != nil {
		t.Fatalf("UpdateLicense: %v", err)
	}
	return got
}

func TestLicenseStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := open(t)

	empty, err := s.LicenseState(ctx, "lic_unknown")
	if err != nil {
		t.Fatalf("LicenseState(unknown): %v", err)
	}
	if empty == nil || empty.License != nil || len(empty.Installations) != 0 {
		t.Fatalf("unknown licence = %+v, want an empty state", empty)
	}

	written := put(t, s, sampleState())
	want := sampleState()
	want.License.Version = 1
	if !reflect.DeepEqual(written, want) {
		t.Fatalf("UpdateLicense returned\n%+v\nwant\n%+v", written, want)
	}
	got, err := s.LicenseState(ctx, "lic_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.License, want.License) {
		t.Errorf("licence read back\n%+v\nwant\n%+v", got.License, want.License)
	}
	if !reflect.DeepEqual(got.Installations, want.Installations) {
		t.Errorf("installations read back\n%+v\nwant\n%+v", got.Installations, want.Installations)
	}

	// The state handed to fn is a copy: changing it without returning it
	// writes nothing.
	_, err = s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		if !reflect.DeepEqual(st.License, want.License) {
			t.Errorf("fn got %+v, want the stored licence", st.License)
		}
		st.License.Status = store.LicenseRevoked
		st.Installations[0].Domain = "evil.com"
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.LicenseState(ctx, "lic_1")
	if !reflect.DeepEqual(again.License, want.License) || !reflect.DeepEqual(again.Installations, want.Installations) {
		t.Fatalf("state changed by an fn that returned nil: %+v", again)
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
	put(t, s, sampleState())
	if err := s.PutRefreshToken(context.Background(), store.RefreshToken{Hash: "h1", Family: "f"}); err != nil {
		t.Fatal(err)
	}

	// The file is locked while open.
	if _, err := embedded.Open(path, 50*time.Millisecond); err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.LicenseState(context.Background(), "lic_1"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("LicenseState after Close = %v, want ErrUnavailable", err)
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
	if _, err := s2.RefreshToken(context.Background(), "h1"); err != nil {
		t.Fatalf("refresh token lost across reopen: %v", err)
	}
}

func TestUpdateLicenseFnOutcomes(t *testing.T) {
	ctx := context.Background()
	errRefused := errors.New("policy refused")
	wrapped := fmt.Errorf("deciding: %w", errRefused)

	tests := []struct {
		name        string
		fn          func(*store.LicenseState) (*store.LicenseState, error)
		wantErr     error
		wantVersion int64
		wantStatus  string
		wantNotice  bool
	}{
		{
			name: "error",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = "revoked"
				return st, errRefused
			},
			wantErr:     errRefused,
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name:        "wrapped error",
			fn:          func(*store.LicenseState) (*store.LicenseState, error) { return nil, wrapped },
			wantErr:     wrapped,
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name: "nil state",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = "revoked"
				return nil, nil
			},
			wantVersion: 1, wantStatus: store.LicenseActive,
		},
		{
			name: "write",
			fn: func(st *store.LicenseState) (*store.LicenseState, error) {
				st.License.Status = "suspended"
				return st, nil
			},
			wantVersion: 2, wantStatus: store.LicenseSuspended, wantNotice: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			put(t, s, &store.LicenseState{License: &store.License{ID: "lic_1", Status: store.LicenseActive}})
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			changes, err := s.Subscribe(sctx)
			if err != nil {
				t.Fatal(err)
			}

			got, err := s.UpdateLicense(ctx, "lic_1", tt.fn)
			if tt.wantErr != nil {
				if err != tt.wantErr || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %#v, want fn's error unchanged (%#v)", err, tt.wantErr)
				}
				if errors.Is(err, store.ErrUnavailable) {
					t.Fatal("fn's error was reported as the store being unavailable")
				}
				if got != nil {
					t.Fatalf("state %+v returned with an error", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				// With nothing written, the answer is fn's own copy (which
				// fn may have modified), so only the version is checked.
				if got.License.Version != tt.wantVersion || (tt.wantNotice && got.License.Status != tt.wantStatus) {
					t.Fatalf("returned version %d status %s, want %d %s", got.License.Version, got.License.Status, tt.wantVersion, tt.wantStatus)
				}
			}
			stored, _ := s.LicenseState(ctx, "lic_1")
			if stored.License.Version != tt.wantVersion || stored.License.Status != tt.wantStatus {
				t.Fatalf("stored version %d status %s, want %d %s", stored.License.Version, stored.License.Status, tt.wantVersion, tt.wantStatus)
			}
			select {
			case c := <-changes:
				if !tt.wantNotice {
					t.Fatalf("change notice %+v although nothing was written", c)
				}
				if c.LicenseID != "lic_1" {
					t.Fatalf("notice for %q", c.LicenseID)
				}
			default:
				if tt.wantNotice {
					t.Fatal("no change notice after a write")
				}
			}
		})
	}
}

func TestUpdateLicenseRefusesStateWithoutLicence(t *testing.T) {
	s := open(t)
	_, err := s.UpdateLicense(context.Background(), "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installations = append(st.Installations, store.Installation{ID: "ins_1"})
		return st, nil
	})
	if err == nil {
		t.Fatal("writing a state with a nil licence succeeded")
	}
	if _, err := s.InstallationLicense(context.Background(), "ins_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("index written by a failed update: %v", err)
	}
}

func TestVersionIncrements(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	for want := int64(1); want <= 5; want++ {
		got, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
			if st.License == nil {
				if want != 1 {
					t.Fatalf("licence missing at version %d", want)
				}
				st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
			} else if st.License.Version != want-1 {
				t.Fatalf("fn saw version %d, want %d", st.License.Version, want-1)
			}
			return st, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.License.Version != want {
			t.Fatalf("version %d, want %d", got.License.Version, want)
		}
	}
}

func TestInstallationLicense(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.InstallationLicense(ctx, "ins_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown installation = %v, want ErrNotFound", err)
	}
	put(t, s, sampleState())
	put(t, s, &store.LicenseState{
		License:       &store.License{ID: "lic_2", Status: store.LicenseActive},
		Installations: []store.Installation{{ID: "ins_3", LicenseID: "lic_2"}},
	})
	// An installation added by a later update is indexed too.
	_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installations = append(st.Installations, store.Installation{ID: "ins_4", LicenseID: "lic_1"})
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ ins, lic string }{
		{"ins_1", "lic_1"}, {"ins_2", "lic_1"}, {"ins_3", "lic_2"}, {"ins_4", "lic_1"}, {"ins_5", ""}, {"", ""},
	} {
		got, err := s.InstallationLicense(ctx, tt.ins)
		if tt.lic == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("InstallationLicense(%q) = %q, %v; want ErrNotFound", tt.ins, got, err)
			}
			continue
		}
		if err != nil || got != tt.lic {
			t.Errorf("InstallationLicense(%q) = %q, %v; want %q", tt.ins, got, err, tt.lic)
		}
	}
}

func TestRefreshTokens(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	first := store.RefreshToken{Hash: "h1", Family: "fam", InstallationID: "ins_1", LicenseID: "lic_1", Generation: 1, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.PutRefreshToken(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := s.RefreshToken(ctx, "h1")
	if err != nil || !reflect.DeepEqual(*got, first) {
		t.Fatalf("RefreshToken = %+v, %v; want %+v", got, err, first)
	}
	if _, err := s.RefreshToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash = %v, want ErrNotFound", err)
	}

	spentAt := t0.Add(time.Minute)
	second := first
	second.Hash, second.IssuedAt = "h2", spentAt
	rec, err := s.SpendRefreshToken(ctx, "h1", spentAt, second)
	if err != nil {
		t.Fatalf("first spend: %v", err)
	}
	if rec.Hash != "h1" || !rec.SpentAt.Equal(spentAt) || rec.InstallationID != "ins_1" {
		t.Fatalf("first spend returned %+v", rec)
	}
	if got, err := s.RefreshToken(ctx, "h2"); err != nil || !reflect.DeepEqual(*got, second) {
		t.Fatalf("successor = %+v, %v; want %+v", got, err, second)
	}
	if got, _ := s.RefreshToken(ctx, "h1"); !got.SpentAt.Equal(spentAt) {
		t.Fatalf("spent token stored with SpentAt %v", got.SpentAt)
	}

	third := first
	third.Hash = "h3"
	tests := []struct {
		name    string
		hash    string
		wantErr error
		wantRec bool
	}{
		{"spent again", "h1", store.ErrRefreshSpent, true},
		{"unknown", "h9", store.ErrNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := s.SpendRefreshToken(ctx, tt.hash, t0.Add(time.Hour), third)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Fatal("reported as unavailable")
			}
			if tt.wantRec {
				if rec == nil || rec.Hash != "h1" || rec.Family != "fam" || !rec.SpentAt.Equal(spentAt) {
					t.Fatalf("record = %+v, want h1 as first spent", rec)
				}
			} else if rec != nil {
				t.Fatalf("record %+v returned for an unknown hash", rec)
			}
			if _, err := s.RefreshToken(ctx, "h3"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("successor stored by a refused spend: %v", err)
			}
		})
	}
	// The first spend time is kept.
	if got, _ := s.RefreshToken(ctx, "h1"); !got.SpentAt.Equal(spentAt) {
		t.Fatalf("SpentAt changed to %v by a second spend", got.SpentAt)
	}
}

func TestConcurrentSpendOnlyOneWins(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if err := s.PutRefreshToken(ctx, store.RefreshToken{Hash: "h1", Family: "f"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, spent := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.SpendRefreshToken(ctx, "h1", time.Now(), store.RefreshToken{Hash: fmt.Sprintf("next%d", i), Family: "f"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrRefreshSpent):
				spent++
			default:
				t.Errorf("spend: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || spent != n-1 {
		t.Fatalf("%d spends won and %d were refused, want 1 and %d", wins, spent, n-1)
	}
}

func key(id string, created time.Time) store.SigningKey {
	return store.SigningKey{ID: id, Algorithm: "EdDSA", PublicKey: []byte(id), SealedPrivateKey: []byte("sealed-" + id), CreatedAt: created}
}

func TestAddSigningKey(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("empty store keys = %v, %v", keys, err)
	}
	steps := []struct {
		name      string
		k         store.SigningKey
		notBefore time.Time
		wantIDs   []string
	}{
		{"first key always added", key("k1", t0), t0.Add(-24 * time.Hour), []string{"k1"}},
		{"newest key is newer than notBefore: not added", key("k2", t0.Add(time.Second)), t0.Add(-time.Second), []string{"k1"}},
		{"notBefore equal to newest: added", key("k2", t0.Add(time.Hour)), t0, []string{"k1", "k2"}},
		{"notBefore after newest: added", key("k3", t0.Add(2*time.Hour)), t0.Add(90 * time.Minute), []string{"k1", "k2", "k3"}},
		{"stale rotation: not added", key("k4", t0.Add(3*time.Hour)), t0.Add(time.Hour), []string{"k1", "k2", "k3"}},
		// Sorted by creation, not by kid or insertion order.
		{"older-created key sorts first", key("a0", t0.Add(-time.Hour)), t0.Add(3 * time.Hour), []string{"a0", "k1", "k2", "k3"}},
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
		var ids, storedIDs []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		for _, k := range stored {
			storedIDs = append(storedIDs, k.ID)
		}
		// AddSigningKey's answer may list the new key last; the store
		// lists keys oldest first.
		if len(ids) != len(st.wantIDs) {
			t.Fatalf("%s: AddSigningKey returned %v, want %v", st.name, ids, st.wantIDs)
		}
		if !reflect.DeepEqual(storedIDs, st.wantIDs) {
			t.Fatalf("%s: SigningKeys = %v, want %v", st.name, storedIDs, st.wantIDs)
		}
	}
	stored, _ := s.SigningKeys(ctx)
	if !reflect.DeepEqual(stored[1], key("k1", t0)) {
		t.Fatalf("key round trip: %+v", stored[1])
	}
}

func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.Idempotent(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key = %v, want ErrNotFound", err)
	}
	got, err := s.PutIdempotent(ctx, "k", []byte("first"), time.Hour)
	if err != nil || string(got) != "first" {
		t.Fatalf("first Put = %q, %v", got, err)
	}
	got, err = s.PutIdempotent(ctx, "k", []byte("second"), time.Hour)
	if err != nil || string(got) != "first" {
		t.Fatalf("second Put = %q, %v; want the first writer's value", got, err)
	}
	if got, err := s.Idempotent(ctx, "k"); err != nil || string(got) != "first" {
		t.Fatalf("Idempotent = %q, %v; want first", got, err)
	}
	if _, err := s.Idempotent(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other key = %v, want ErrNotFound", err)
	}

	// An expired answer is gone and may be replaced.
	if _, err := s.PutIdempotent(ctx, "old", []byte("stale"), -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Idempotent(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired answer = %v, want ErrNotFound", err)
	}
	if got, err := s.PutIdempotent(ctx, "old", []byte("fresh"), time.Hour); err != nil || string(got) != "fresh" {
		t.Fatalf("Put over an expired answer = %q, %v; want fresh", got, err)
	}

	// Concurrent first writers: everyone gets the same answer.
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
}

func TestSubscribe(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	sctx, cancel := context.WithCancel(ctx)
	a, err := s.Subscribe(sctx)
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	b, _ := s.Subscribe(bctx)

	put(t, s, sampleState())
	for name, ch := range map[string]<-chan store.Change{"a": a, "b": b} {
		select {
		case c := <-ch:
			if c.LicenseID != "lic_1" {
				t.Fatalf("%s: change %+v, want lic_1", name, c)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change notice", name)
		}
	}

	cancel()
	deadline := time.After(5 * time.Second)
	for closed := false; !closed; {
		select {
		case _, ok := <-a:
			closed = !ok
		case <-deadline:
			t.Fatal("channel not closed after ctx was cancelled")
		}
	}
	// Writes after a subscriber left do not panic and still reach others.
	put(t, s, sampleState())
	select {
	case <-b:
	case <-time.After(5 * time.Second):
		t.Fatal("remaining subscriber got no notice")
	}

	// Close closes the remaining subscribers.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-b:
		if ok {
			t.Fatal("value after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed by Close")
	}
}

func TestSlowSubscriberDoesNotBlockWriters(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t)
	if _, err := s.Subscribe(ctx); err != nil { // never read
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 400; i++ {
			put(t, s, &store.LicenseState{License: &store.License{ID: "lic_1", Status: "active"}})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers blocked by a subscriber that does not read")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	const n = 50
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				if st.License == nil {
					st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
				}
				st.Installations = append(st.Installations, store.Installation{ID: fmt.Sprintf("ins_%d", i), LicenseID: "lic_1"})
				return st, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := s.LicenseState(ctx, "lic_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Installations) != n {
		t.Fatalf("%d installations after %d concurrent appends, want %d", len(st.Installations), n, n)
	}
	seen := map[string]bool{}
	for _, in := range st.Installations {
		if seen[in.ID] {
			t.Fatalf("installation %s twice", in.ID)
		}
		seen[in.ID] = true
		if lic, err := s.InstallationLicense(ctx, in.ID); err != nil || lic != "lic_1" {
			t.Fatalf("index for %s = %q, %v", in.ID, lic, err)
		}
	}
	if st.License.Version != n {
		t.Fatalf("version %d after %d writes", st.License.Version, n)
	}
}

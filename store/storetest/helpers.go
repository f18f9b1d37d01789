package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// t0 is a fixed instant for licence fields: UTC and without a monotonic
// reading, so a JSON round trip gives back an identical time.Time.
var t0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

// now is the wall clock in the same comparable form, for records a backend
// may expire by their own timestamps (refresh tokens).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// wait bounds how long an asynchronous effect (a change notice, a channel
// closing) may take.
const wait = 5 * time.Second

func ptr(t time.Time) *time.Time { return &t }

// sampleState sets every field of a licence and its installations.
func sampleState() *store.LicenseState {
	return &store.LicenseState{
		License: &store.License{
			ID: "lic_1", Product: "converter-pro", Source: "envato", Type: "regular",
			LicensedTo: "buyer", ExpiresAt: ptr(t0.AddDate(1, 0, 0)), SupportUntil: ptr(t0.AddDate(0, 6, 0)),
			Retired: true, ActivationsLimit: 2, Status: store.LicenseFlagged, StatusBy: "recheck",
			Locked: true, KeyCiphertext: []byte{1, 2, 3, 0, 255}, VerifiedAt: t0,
			NextCheckAt: t0.Add(168 * time.Hour), LastMoveAt: t0.Add(-time.Hour), VendorID: "vendor-1",
			Refs: []string{store.RefTerm("envato", "order", "77")},
			Recheck: store.RecheckState{LastCheckAt: t0.Add(-2 * time.Hour), LastOutcome: "invalid", LastReason: "refunded",
				Definitive: 2, FirstDefinitiveAt: t0.Add(-3 * time.Hour), Unknown: 1},
			Fence:     4,
			Sightings: []store.Sighting{{Kind: "domain", Value: "acme.com", At: t0}, {Kind: "network", Value: "198.51.100.0/24", At: t0}},
			CreatedAt: t0.Add(-24 * time.Hour), UpdatedAt: t0.Add(time.Nanosecond),
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

// license returns a minimal active licence.
func license(id string) *store.LicenseState {
	return &store.LicenseState{License: &store.License{ID: id, Status: store.LicenseActive, CreatedAt: t0}}
}

// put writes st as the licence's whole state.
func put(t *testing.T, s store.Store, st *store.LicenseState) *store.LicenseState {
	t.Helper()
	got, err := s.UpdateLicense(context.Background(), st.License.ID, func(*store.LicenseState) (*store.LicenseState, error) { return st, nil })
	if err != nil {
		t.Fatalf("UpdateLicense(%s): %v", st.License.ID, err)
	}
	return got
}

// update applies fn to a licence, failing the test on error.
func update(t *testing.T, s store.Store, id string, fn func(*store.LicenseState)) *store.LicenseState {
	t.Helper()
	got, err := s.UpdateLicense(context.Background(), id, func(st *store.LicenseState) (*store.LicenseState, error) {
		fn(st)
		return st, nil
	})
	if err != nil {
		t.Fatalf("UpdateLicense(%s): %v", id, err)
	}
	return got
}

func read(t *testing.T, s store.Store, id string) *store.LicenseState {
	t.Helper()
	st, err := s.LicenseState(context.Background(), id)
	if err != nil {
		t.Fatalf("LicenseState(%s): %v", id, err)
	}
	return st
}

// subscribe subscribes until the test ends.
func subscribe(t *testing.T, s store.Store) <-chan store.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return ch
}

// noticesUntil collects the change notices ch delivers up to and including
// the first one for licence id.
func noticesUntil(t *testing.T, ch <-chan store.Change, id string) []store.Change {
	t.Helper()
	return noticesUntilFunc(t, ch, "licence "+id, func(c store.Change) bool { return c.LicenseID == id })
}

func noticesUntilFunc(t *testing.T, ch <-chan store.Change, what string, match func(store.Change) bool) []store.Change {
	t.Helper()
	var got []store.Change
	timeout := time.After(wait)
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("change feed closed while waiting for a notice for %s (got %+v)", what, got)
			}
			got = append(got, c)
			if match(c) {
				return got
			}
		case <-timeout:
			t.Fatalf("no change notice for %s within %s (got %+v)", what, wait, got)
		}
	}
}

// straggle is how long notices published before a sentinel's may still
// arrive after it: a single server delivers in publishing order, but a
// Redis Cluster relays PUBLISH between nodes over its bus, so notices
// from writes in different slots can overtake each other.
const straggle = 150 * time.Millisecond

// settle writes licence sentinel and collects the notices ch delivers up
// to its notice and for straggle after, to show that an earlier write was
// not announced.
func settle(t *testing.T, s store.Store, ch <-chan store.Change, sentinel string) []store.Change {
	t.Helper()
	put(t, s, license(sentinel))
	got := noticesUntil(t, ch, sentinel)
	timeout := time.After(straggle)
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, c)
		case <-timeout:
			return got
		}
	}
}

func announced(changes []store.Change, id string) bool {
	for _, c := range changes {
		if c.LicenseID == id {
			return true
		}
	}
	return false
}

func waitClosed(t *testing.T, ch <-chan store.Change, what string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("change feed not closed within %s after %s", wait, what)
		}
	}
}

package embedded_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

// TestStatusCountsAdoptOlderLicences: a licence stored before the status
// counts existed is in none of them, and its next write adds it once,
// taking nothing off; the writes after move it as any other.
func TestStatusCountsAdoptOlderLicences(t *testing.T) {
	ctx := context.Background()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	put(t, s, &store.LicenseState{License: &store.License{ID: "lic_new", Status: store.LicenseActive}})
	old := &store.LicenseState{
		License:       &store.License{ID: "lic_old", Status: store.LicenseFlagged, Locked: true},
		Installations: []store.Installation{{ID: "ins_1", LicenseID: "lic_old", Status: store.InstallationActive}},
	}
	if err := embedded.PutUncounted(s, old); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, active, flagged, installations, locked int64) {
		t.Helper()
		lic, ins, l, err := s.StatusCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lic[store.LicenseActive] != active || lic[store.LicenseFlagged] != flagged || ins[store.InstallationActive] != installations || l != locked {
			t.Errorf("%s: StatusCounts = %v, %v, %d; want active %d, flagged %d, installations %d, locked %d",
				what, lic, ins, l, active, flagged, installations, locked)
		}
	}
	expect("before lic_old's next write", 1, 0, 0, 0)
	for range 2 {
		if _, err := s.UpdateLicense(ctx, "lic_old", func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License.VerifiedAt = time.Now()
			return st, nil
		}); err != nil {
			t.Fatal(err)
		}
		expect("after lic_old's next writes", 1, 1, 1, 1)
	}
	if _, err := s.UpdateLicense(ctx, "lic_old", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Status, st.License.Locked = store.LicenseActive, false
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	expect("after lic_old was reinstated and unlocked", 2, 0, 1, 0)
}

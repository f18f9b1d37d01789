package embedded_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

// TestLookupRepairedByNextWrite: a licence stored before domain terms or
// review queues existed (its entry missing) is indexed by its next
// write, whatever it changes.
func TestLookupRepairedByNextWrite(t *testing.T) {
	ctx := context.Background()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	put(t, s, &store.LicenseState{
		License:       &store.License{ID: "lic_1", Status: store.LicenseActive},
		Installations: []store.Installation{{ID: "ins_1", LicenseID: "lic_1", Domain: "acme.com", Status: store.InstallationActive}},
	})
	term := store.DomainTerm("acme.com")
	if err := embedded.DropLookup(s, term, "lic_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Locked = true
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.Lookup(ctx, term); err != nil || len(ids) != 1 || ids[0] != "lic_1" {
		t.Errorf("Lookup(%s) after the next write = %v, %v; want lic_1", term, ids, err)
	}
	// A licence locked before the review queues existed joins its queue
	// with its next write.
	queue := store.QueueTerm(store.QueueLocked)
	if err := embedded.DropLookup(s, queue, "lic_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.VerifiedAt = time.Now()
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountTerm(ctx, queue); err != nil || n != 1 {
		t.Errorf("CountTerm(%s) after the next write = %d, %v; want 1", queue, n, err)
	}
}

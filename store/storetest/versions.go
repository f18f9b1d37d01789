package storetest

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// versions reads a product's version counts, failing the test on error.
func versions(t *testing.T, s store.Store, product string) map[string]int64 {
	t.Helper()
	got, err := s.Versions(context.Background(), product)
	if err != nil {
		t.Fatalf("Versions(%s): %v", product, err)
	}
	return got
}

// versioned is an installation of product p on version v.
func versioned(lic, id, product, v, status string) store.Installation {
	return store.Installation{ID: id, LicenseID: lic, Product: product, Domain: id + ".example", Status: status, Version: v, CreatedAt: t0}
}

// truth counts the active installations per version of product in the
// licences' states as stored.
func truth(t *testing.T, s store.Store, product string, ids ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, id := range ids {
		for _, in := range read(t, s, id).Installations {
			if in.Product == product && in.Active() && store.ValidVersion(in.Version) {
				out[in.VersionCountedAs]++
			}
		}
	}
	return out
}

// testVersionCounts: a product's version counts follow its active
// installations through every write that changes them: a reported
// version (RecordSeen, not an older report's), a deactivation and a
// reactivation, an installation the state forgets; an installation with
// no valid version is not counted, and products are apart.
func testVersionCounts(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	expect := func(what, product string, want map[string]int64) {
		t.Helper()
		if got := versions(t, s, product); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Versions(%s) = %v, want %v", what, product, got, want)
		}
	}
	if got := versions(t, s, "p"); got == nil || len(got) != 0 {
		t.Errorf("Versions of a product with none = %#v, want an empty map", got)
	}
	a := license("lic_a")
	a.Installations = []store.Installation{
		versioned("lic_a", "i1", "p", "1.0", store.InstallationActive),
		versioned("lic_a", "i2", "p", "2.0", store.InstallationActive),
		versioned("lic_a", "i3", "p", "1.0", store.InstallationDeactivated),
		versioned("lic_a", "i4", "p", "", store.InstallationActive),
		versioned("lic_a", "i5", "p", "not a version", store.InstallationActive),
	}
	a.Installations[1].VersionCountedAs = "9.9" // the caller's is ignored
	given := a.Installations
	written := put(t, s, a)
	expect("after the first write", "p", map[string]int64{"1.0": 1, "2.0": 1})
	if got := written.Installation("i2").VersionCountedAs; got != "2.0" {
		t.Errorf("i2 counted as %q, want 2.0", got)
	}
	if given[1].VersionCountedAs != "9.9" {
		t.Error("UpdateLicense changed the installations the caller gave")
	}
	b := license("lic_b")
	b.Installations = []store.Installation{
		versioned("lic_b", "j1", "p", "1.0", store.InstallationActive),
		versioned("lic_b", "j2", "q", "1.0", store.InstallationActive),
	}
	put(t, s, b)
	expect("another licence", "p", map[string]int64{"1.0": 2, "2.0": 1})
	expect("another product", "q", map[string]int64{"1.0": 1})

	later := t0.Add(time.Hour)
	seen := func(batch ...store.Seen) {
		t.Helper()
		if err := s.RecordSeen(ctx, batch); err != nil {
			t.Fatalf("RecordSeen: %v", err)
		}
	}
	seen(store.Seen{LicenseID: "lic_a", InstallationID: "i1", At: later, Version: "2.0"},
		store.Seen{LicenseID: "lic_a", InstallationID: "i4", At: later, Version: "2.1.0-beta+7"},
		store.Seen{LicenseID: "lic_a", InstallationID: "i3", At: later, Version: "3.0"}, // deactivated: not counted
		store.Seen{LicenseID: "lic_b", InstallationID: "j1", At: later})                 // no version: kept
	expect("after reports", "p", map[string]int64{"1.0": 1, "2.0": 2, "2.1.0-beta+7": 1})
	seen(store.Seen{LicenseID: "lic_a", InstallationID: "i1", At: t0, Version: "0.9"}) // older than the last report
	expect("after an older report", "p", map[string]int64{"1.0": 1, "2.0": 2, "2.1.0-beta+7": 1})
	if got := read(t, s, "lic_a").Installation("i1"); got.Version != "2.0" || !got.LastSeenAt.Equal(later) {
		t.Errorf("i1 after an older report: version %q, last seen %v", got.Version, got.LastSeenAt)
	}

	update(t, s, "lic_a", func(st *store.LicenseState) { st.Installation("i2").Status = store.InstallationDeactivated })
	expect("after a deactivation", "p", map[string]int64{"1.0": 1, "2.0": 1, "2.1.0-beta+7": 1})
	update(t, s, "lic_a", func(st *store.LicenseState) { st.Installation("i3").Status = store.InstallationActive })
	expect("after a reactivation on the version reported meanwhile", "p", map[string]int64{"1.0": 1, "2.0": 1, "2.1.0-beta+7": 1, "3.0": 1})
	update(t, s, "lic_a", func(st *store.LicenseState) { st.Installations = st.Installations[2:] }) // i1, i2 forgotten
	expect("after installations are forgotten", "p", map[string]int64{"1.0": 1, "2.1.0-beta+7": 1, "3.0": 1})
	update(t, s, "lic_b", func(st *store.LicenseState) { st.License.Status = store.LicenseSuspended }) // no installation changes
	expect("after a write of the licence alone", "p", map[string]int64{"1.0": 1, "2.1.0-beta+7": 1, "3.0": 1})
	if want := truth(t, s, "p", "lic_a", "lic_b"); !reflect.DeepEqual(versions(t, s, "p"), want) {
		t.Errorf("counts %v, installations %v", versions(t, s, "p"), want)
	}
}

// testVersionBound: at most MaxVersions versions of a product have
// counts of their own; an installation on a further one counts under
// VersionOther until it leaves, and is taken off there; a version whose
// count falls to zero makes room.
func testVersionBound(t *testing.T, h *harness) {
	s := h.open(t)
	a := license("lic_a")
	for i := range store.MaxVersions {
		a.Installations = append(a.Installations, versioned("lic_a", fmt.Sprintf("a%02d", i), "p", fmt.Sprintf("1.%d", i), store.InstallationActive))
	}
	put(t, s, a)
	b := license("lic_b")
	b.Installations = []store.Installation{
		versioned("lic_b", "b1", "p", "9.0", store.InstallationActive),
		versioned("lic_b", "b2", "p", "9.1", store.InstallationActive),
		versioned("lic_b", "b3", "p", "1.0", store.InstallationActive), // a version counted already
	}
	st := put(t, s, b)
	got := versions(t, s, "p")
	if len(got) != store.MaxVersions+1 || got[store.VersionOther] != 2 || got["1.0"] != 2 || got["9.0"] != 0 {
		t.Fatalf("past the bound: %d versions, other %d, 1.0 %d, 9.0 %d; want %d, 2, 2, 0",
			len(got), got[store.VersionOther], got["1.0"], got["9.0"], store.MaxVersions+1)
	}
	if as := st.Installation("b1").VersionCountedAs; as != store.VersionOther {
		t.Errorf("b1 counted as %q, want %s", as, store.VersionOther)
	}
	// 1.1's only installation leaves: room for 9.2; 9.1 stays folded.
	update(t, s, "lic_a", func(st *store.LicenseState) { st.Installation("a01").Status = store.InstallationDeactivated })
	update(t, s, "lic_b", func(st *store.LicenseState) {
		st.Installation("b1").Status = store.InstallationDeactivated
		st.Installations = append(st.Installations, versioned("lic_b", "b4", "p", "9.2", store.InstallationActive))
	})
	got = versions(t, s, "p")
	if got["1.1"] != 0 || got["9.2"] != 1 || got[store.VersionOther] != 1 || len(got) != store.MaxVersions+1 {
		t.Errorf("after room was made: 1.1 %d, 9.2 %d, other %d, %d versions; want 0, 1, 1, %d",
			got["1.1"], got["9.2"], got[store.VersionOther], len(got), store.MaxVersions+1)
	}
	update(t, s, "lic_b", func(st *store.LicenseState) { st.Installation("b2").Status = store.InstallationDeactivated })
	if got := versions(t, s, "p"); got[store.VersionOther] != 0 {
		t.Errorf("after the last folded installation left, other = %d", got[store.VersionOther])
	}
	if want := truth(t, s, "p", "lic_a", "lic_b"); !reflect.DeepEqual(versions(t, s, "p"), want) {
		t.Errorf("counts %v, installations %v", versions(t, s, "p"), want)
	}
}

// testConcurrentVersionCounts: reports and status changes racing on
// every handle leave the counts equal to the installations stored.
func testConcurrentVersionCounts(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	handles := []store.Store{s}
	if h.cfg.peer != nil {
		handles = append(handles, h.cfg.peer(t, s))
	}
	const licences, rounds = 4, 12
	var ids []string
	for i := range licences {
		id := fmt.Sprintf("lic_%d", i)
		ids = append(ids, id)
		st := license(id)
		st.Installations = []store.Installation{
			versioned(id, id+"_x", "p", "1.0", store.InstallationActive),
			versioned(id, id+"_y", "p", "1.0", store.InstallationActive),
		}
		put(t, s, st)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(handles)*licences*rounds)
	for w, hs := range handles {
		for _, id := range ids {
			wg.Add(2)
			go func() { // the gate's reports
				defer wg.Done()
				for r := range rounds {
					v := fmt.Sprintf("%d.%d", w, r%3)
					at := t0.Add(time.Duration(r+1) * time.Minute)
					errs <- hs.RecordSeen(ctx, []store.Seen{{LicenseID: id, InstallationID: id + "_x", At: at, Version: v}, {LicenseID: id, InstallationID: id + "_y", At: at, Version: v}})
				}
			}()
			go func() { // deactivations and reactivations
				defer wg.Done()
				for r := range rounds {
					_, err := hs.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
						in := st.Installation(id + "_y")
						in.Status = map[bool]string{true: store.InstallationActive, false: store.InstallationDeactivated}[r%2 == 1]
						return st, nil
					})
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, want := versions(t, s, "p"), truth(t, s, "p", ids...)
	if !maps.Equal(got, want) {
		t.Errorf("counts %v after concurrent writes, installations %v", got, want)
	}
}

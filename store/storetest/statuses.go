package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/licensegate/licensegate/store"
)

// statusCounts is a store.StatusCounter's answer.
type statusCounts struct {
	licenses, installations map[string]int64
	locked                  int64
}

func (c statusCounts) String() string {
	return fmt.Sprintf("licences %v, installations %v, locked %d", c.licenses, c.installations, c.locked)
}

func (c statusCounts) equal(o statusCounts) bool {
	return maps.Equal(c.licenses, o.licenses) && maps.Equal(c.installations, o.installations) && c.locked == o.locked
}

// counts reads s's status counts, failing the test on error.
func counts(t *testing.T, s store.Store) statusCounts {
	t.Helper()
	sc, ok := s.(store.StatusCounter)
	if !ok {
		t.Fatalf("%T does not implement store.StatusCounter", s)
	}
	lic, ins, locked, err := sc.StatusCounts(context.Background())
	if err != nil {
		t.Fatalf("StatusCounts: %v", err)
	}
	return statusCounts{lic, ins, locked}
}

// countedTruth counts the licences named as stored.
func countedTruth(t *testing.T, s store.Store, ids ...string) statusCounts {
	t.Helper()
	c := statusCounts{map[string]int64{}, map[string]int64{}, 0}
	for _, id := range ids {
		st := read(t, s, id)
		if st.License == nil {
			continue
		}
		c.licenses[st.License.Status]++
		if st.License.Locked {
			c.locked++
		}
		for _, in := range st.Installations {
			c.installations[in.Status]++
		}
	}
	return c
}

// testStatusCounts: the counts follow every write of a licence (its
// status, its lock, its installations' statuses, installations the
// state forgets) and nothing else: a write fn declines or refuses, a
// last-seen record, a caller's claim that the licence is not counted.
func testStatusCounts(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	ids := []string{"lic_a", "lic_b", "lic_c"}
	expect := func(what string) {
		t.Helper()
		if got, want := counts(t, s), countedTruth(t, s, ids...); !got.equal(want) {
			t.Errorf("%s: StatusCounts = %s, want %s", what, got, want)
		}
	}
	if got := counts(t, s); got.licenses == nil || got.installations == nil || len(got.licenses)+len(got.installations) != 0 || got.locked != 0 {
		t.Errorf("StatusCounts of an empty store = %s, want empty maps", got)
	}
	ins := func(lic, id, status string) store.Installation {
		return store.Installation{ID: id, LicenseID: lic, Product: "p", Domain: id + ".example", Status: status, CreatedAt: t0}
	}
	a := license("lic_a")
	a.Installations = []store.Installation{ins("lic_a", "a1", store.InstallationActive), ins("lic_a", "a2", store.InstallationActive),
		ins("lic_a", "a3", store.InstallationDeactivated)}
	b := license("lic_b")
	b.License.Status, b.License.Locked = store.LicenseFlagged, true
	b.Installations = []store.Installation{ins("lic_b", "b1", store.InstallationCloned)}
	c := license("lic_c")
	c.License.Status = store.LicenseSuspended
	for _, st := range []*store.LicenseState{a, b, c} {
		put(t, s, st)
	}
	expect("as written")
	if got := counts(t, s); got.licenses[store.LicenseActive] != 1 || got.installations[store.InstallationActive] != 2 || got.locked != 1 {
		t.Errorf("StatusCounts = %s: want 1 active licence, 2 active installations, 1 locked", got)
	}

	update(t, s, "lic_a", func(st *store.LicenseState) {
		st.License.Status = store.LicenseSuspended
		st.Installations[1].Status = store.InstallationDeactivated
		st.Installations = st.Installations[:2] // a3 pruned
	})
	update(t, s, "lic_b", func(st *store.LicenseState) {
		st.License.Status, st.License.Locked = store.LicenseActive, false
		st.Installations = append(st.Installations, ins("lic_b", "b2", store.InstallationActive))
	})
	expect("after suspending, unlocking, pruning and activating")

	// The caller's claim that a licence is not counted changes nothing:
	// lic_c written whole from a fresh state.
	put(t, s, license("lic_c"))
	expect("after lic_c was written from a fresh state")
	// Writes that write nothing count nothing.
	if _, err := s.UpdateLicense(ctx, "lic_a", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Status = store.LicenseRevoked
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLicense(ctx, "lic_a", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Status = store.LicenseRevoked
		return nil, errors.New("refused")
	}); err == nil {
		t.Fatal("a refused write succeeded")
	}
	// A last-seen record is no change of status.
	if err := s.RecordSeen(ctx, []store.Seen{{LicenseID: "lic_b", InstallationID: "b2", At: t0, Version: "1.0"}}); err != nil {
		t.Fatal(err)
	}
	update(t, s, "lic_b", func(st *store.LicenseState) { st.License.Type = "extended" })
	expect("after writes of nothing, a last-seen record and a write keeping the statuses")
	if !read(t, s, "lic_b").License.Counted {
		t.Error("a stored licence is not marked counted")
	}
}

// testConcurrentStatusCounts: writes racing on several licences (over
// two handles when the backend has them) leave the counts exact.
func testConcurrentStatusCounts(t *testing.T, h *harness) {
	s := h.open(t)
	handles := []store.Store{s}
	if h.cfg.peer != nil {
		handles = append(handles, h.cfg.peer(t, s))
	}
	ids := []string{"lic_0", "lic_1", "lic_2", "lic_3"}
	statuses := []string{store.LicenseActive, store.LicenseFlagged, store.LicenseSuspended, store.LicenseRevoked}
	installs := []string{store.InstallationActive, store.InstallationDeactivated, store.InstallationCloned}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			hs := handles[w%len(handles)]
			for range 15 {
				id := ids[r.IntN(len(ids))]
				_, err := hs.UpdateLicense(context.Background(), id, func(st *store.LicenseState) (*store.LicenseState, error) {
					if st.License == nil {
						st = license(id)
					}
					st.License.Status, st.License.Locked = statuses[r.IntN(len(statuses))], r.IntN(2) == 0
					st.Installations = nil
					for i := range r.IntN(3) {
						st.Installations = append(st.Installations, store.Installation{ID: fmt.Sprintf("%s_i%d", id, i), LicenseID: id, Status: installs[r.IntN(len(installs))]})
					}
					return st, nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := counts(t, s), countedTruth(t, s, ids...); !got.equal(want) {
		t.Errorf("after racing writes, StatusCounts = %s, want %s", got, want)
	}
}

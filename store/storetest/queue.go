package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/licensegate/licensegate/store"
)

// pager returns s as a store.TermPager, which every backend implements.
func pager(t *testing.T, s store.Store) store.TermPager {
	t.Helper()
	p, ok := s.(store.TermPager)
	if !ok {
		t.Fatalf("%T does not implement store.TermPager", s)
	}
	return p
}

// page reads one page of a term's licences, failing the test on error.
func page(t *testing.T, s store.Store, term, after string, limit int) []string {
	t.Helper()
	ids, err := pager(t, s).LookupAfter(context.Background(), term, after, limit)
	if err != nil {
		t.Fatalf("LookupAfter(%s, %q, %d): %v", term, after, limit, err)
	}
	return ids
}

// countTerm counts a term's licences, failing the test on error.
func countTerm(t *testing.T, s store.Store, term string) int64 {
	t.Helper()
	n, err := pager(t, s).CountTerm(context.Background(), term)
	if err != nil {
		t.Fatalf("CountTerm(%s): %v", term, err)
	}
	return n
}

// testReviewQueues: a licence is in each review queue from the write
// that flags it, locks it or marks an installation cloned, and leaves it
// in the write that clears that; Lookup, LookupAfter and CountTerm agree.
func testReviewQueues(t *testing.T, h *harness) {
	s := h.open(t)
	cloned := func(lic, id string) store.Installation {
		return store.Installation{ID: id, LicenseID: lic, Product: "p", Domain: id + ".example", Status: store.InstallationCloned, CreatedAt: t0}
	}
	flagged := license("lic_f")
	flagged.License.Status = store.LicenseFlagged
	locked := license("lic_l")
	locked.License.Locked = true
	clone := license("lic_c")
	clone.Installations = []store.Installation{cloned("lic_c", "ins_c1"), cloned("lic_c", "ins_c2")}
	all := license("lic_all")
	all.License.Status, all.License.Locked = store.LicenseFlagged, true
	all.Installations = []store.Installation{cloned("lic_all", "ins_all")}
	for _, st := range []*store.LicenseState{flagged, locked, clone, all, license("lic_ok")} {
		put(t, s, st)
	}
	expect := func(what string, want map[string][]string) {
		t.Helper()
		for _, q := range store.Queues {
			term, ids := store.QueueTerm(q), want[q]
			if ids == nil {
				ids = []string{}
			}
			if got := lookup(t, s, term); !reflect.DeepEqual(got, ids) {
				t.Errorf("%s: Lookup(%s) = %v, want %v", what, term, got, ids)
			}
			if got := page(t, s, term, "", 10); !reflect.DeepEqual(got, ids) {
				t.Errorf("%s: LookupAfter(%s) = %v, want %v", what, term, got, ids)
			}
			if got := countTerm(t, s, term); got != int64(len(ids)) {
				t.Errorf("%s: CountTerm(%s) = %d, want %d", what, term, got, len(ids))
			}
		}
	}
	expect("as written", map[string][]string{
		store.QueueFlagged: {"lic_all", "lic_f"},
		store.QueueLocked:  {"lic_all", "lic_l"},
		store.QueueCloned:  {"lic_all", "lic_c"},
	})

	// lic_all is reinstated, unlocked and its installation reactivated
	// in one write; lic_f is suspended; lic_c's cloned installations are
	// pruned one at a time; lic_ok is flagged.
	update(t, s, "lic_all", func(st *store.LicenseState) {
		st.License.Status, st.License.Locked = store.LicenseActive, false
		st.Installations[0].Status = store.InstallationActive
	})
	update(t, s, "lic_f", func(st *store.LicenseState) { st.License.Status = store.LicenseSuspended })
	update(t, s, "lic_c", func(st *store.LicenseState) { st.Installations = st.Installations[1:] })
	update(t, s, "lic_ok", func(st *store.LicenseState) { st.License.Status = store.LicenseFlagged })
	expect("after the writes", map[string][]string{
		store.QueueFlagged: {"lic_ok"},
		store.QueueLocked:  {"lic_l"},
		store.QueueCloned:  {"lic_c"},
	})
	update(t, s, "lic_c", func(st *store.LicenseState) { st.Installations = nil })
	update(t, s, "lic_l", func(st *store.LicenseState) { st.License.Locked = false })
	expect("after the last cloned installation is pruned and the lock lifted", map[string][]string{
		store.QueueFlagged: {"lic_ok"},
	})
	if got := page(t, s, "queue:flag", "", 10); len(got) != 0 {
		t.Errorf("LookupAfter of a term's prefix = %v, want none", got)
	}
}

// queueSize is how many licences testReviewQueuePaging flags: past
// MaxLookup and MaxPage both.
const queueSize = store.MaxPage + 5

// testReviewQueuePaging: a queue of more licences than MaxLookup and
// MaxPage is paged through in id order from any cursor (one that is no
// member included), each page at most its limit and MaxPage, and counted
// exactly.
func testReviewQueuePaging(t *testing.T, h *harness) {
	s := h.open(t)
	term := store.QueueTerm(store.QueueFlagged)
	want := make([]string, queueSize)
	for i := range want {
		want[i] = fmt.Sprintf("lic_%04d", i)
	}
	putConcurrently(t, s, want, func(st *store.LicenseState) { st.License.Status = store.LicenseFlagged })
	put(t, s, license("lic_x")) // not flagged

	if got := countTerm(t, s, term); got != queueSize {
		t.Errorf("CountTerm = %d, want %d", got, queueSize)
	}
	if got := lookup(t, s, term); !slices.Equal(got, want[:store.MaxLookup]) {
		t.Errorf("Lookup = %d ids (%s ... %s), want the first %d", len(got), first(got), last(got), store.MaxLookup)
	}
	var got []string
	for after := ""; ; {
		ids := page(t, s, term, after, 200)
		if len(ids) > 200 {
			t.Fatalf("a page of limit 200 holds %d ids", len(ids))
		}
		if len(ids) == 0 {
			break
		}
		got = append(got, ids...)
		after = ids[len(ids)-1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("paging by 200 listed %d ids (%s ... %s), want %d in id order", len(got), first(got), last(got), len(want))
	}
	if ids := page(t, s, term, "", 10*store.MaxPage); len(ids) != store.MaxPage {
		t.Errorf("a page asked for %d ids holds %d, want MaxPage (%d)", 10*store.MaxPage, len(ids), store.MaxPage)
	}
	if ids := page(t, s, term, "lic_0100x", 2); !slices.Equal(ids, want[101:103]) {
		t.Errorf("a page after a cursor that is no member = %v, want %v", ids, want[101:103])
	}
	if ids := page(t, s, term, want[queueSize-1], 10); ids == nil || len(ids) != 0 {
		t.Errorf("the page after the last = %#v, want an empty list", ids)
	}
	if ids := page(t, s, term, "", 0); ids == nil || len(ids) != 0 {
		t.Errorf("a page of limit 0 = %#v, want an empty list", ids)
	}
	if n := countTerm(t, s, store.QueueTerm(store.QueueLocked)); n != 0 {
		t.Errorf("CountTerm of an empty queue = %d", n)
	}
}

// putConcurrently writes a licence for each id, shaped by fn, from a
// few goroutines at once (so many writes take little time).
func putConcurrently(t *testing.T, s store.Store, ids []string, fn func(*store.LicenseState)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	work := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				st := license(id)
				fn(st)
				if _, err := s.UpdateLicense(context.Background(), id, func(*store.LicenseState) (*store.LicenseState, error) { return st, nil }); err != nil {
					errs <- fmt.Errorf("UpdateLicense(%s): %w", id, err)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

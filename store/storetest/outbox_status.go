package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// WithCorruptOutbox gives Run a way to overwrite the stored record of
// outbox entry id with bytes that do not decode. Listing the pending or
// the failed entries is then checked to read those entries only: it must
// not trip over the delivered ones, however many there are.
func WithCorruptOutbox(corrupt func(t *testing.T, s store.Store, id string)) Option {
	return func(c *config) { c.corrupt = corrupt }
}

// settleNew writes one event for each of n new licences, prefix plus a
// number, the i-th at at+i seconds; claims them at at and settles the
// i-th as status(i) says: delivered (done at at), failed (done at at+i
// minutes) or pending (again, due an hour after at). It returns their ids
// by status, in write order.
func settleNew(t *testing.T, s store.Store, prefix string, n int, at time.Time, status func(i int) string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	ids := map[string][]string{}
	byLicence := map[string]int{}
	for i := range n {
		lic := fmt.Sprintf("%s%03d", prefix, i)
		st := license(lic)
		st.Events = []store.AuditEvent{event(store.AuditLicenseSuspended, lic, at.Add(time.Duration(i)*time.Second))}
		put(t, s, st)
		byLicence[lic] = i
	}
	es, err := s.ClaimOutbox(ctx, at, time.Minute, 2*n)
	if err != nil {
		t.Fatalf("ClaimOutbox: %v", err)
	}
	order := make([]string, n)
	for _, e := range es {
		i, ok := byLicence[e.Event.LicenseID]
		if !ok {
			continue
		}
		e.Attempts = 1
		switch e.Status = status(i); e.Status {
		case store.OutboxDelivered:
			e.DoneAt = at
		case store.OutboxFailed:
			e.DoneAt = at.Add(time.Duration(i) * time.Minute)
		default:
			e.NextAttemptAt = at.Add(time.Hour)
		}
		if err := s.SettleOutbox(ctx, e); err != nil {
			t.Fatalf("SettleOutbox(%s): %v", e.ID, err)
		}
		order[i] = e.ID
		delete(byLicence, e.Event.LicenseID)
	}
	if len(byLicence) != 0 {
		t.Fatalf("ClaimOutbox did not claim the entries of %d licences", len(byLicence))
	}
	for i, id := range order {
		ids[status(i)] = append(ids[status(i)], id)
	}
	return ids
}

// Pending and failed entries are listed from their own index: exactly
// those, page by page, through every change of status (a settle, a
// retry, a trim of the delivered ones), and without reading a delivered
// entry (WithCorruptOutbox).
func testOutboxByStatus(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	counter, _ := s.(store.OutboxCounter)
	// ids lists every entry of one status, two a page.
	ids := func(status string) []string {
		t.Helper()
		var out []string
		for _, e := range outbox(t, s, status) {
			if e.Status != status && status != "" {
				t.Errorf("listing %q gave %s, %s", status, e.ID, e.Status)
			}
			out = append(out, e.ID)
		}
		return out
	}
	sorted := func(ids ...[]string) []string {
		out := slices.Concat(ids...)
		slices.Sort(out)
		return out
	}
	var wantPending, wantFailed []string
	check := func(when string) {
		t.Helper()
		// Pending entries come oldest first on both stores (by id, or by
		// creation then id); failed ones by id or by failure time, so
		// they are compared as sets.
		if got := ids(store.OutboxPending); !slices.Equal(got, wantPending) {
			t.Errorf("%s: pending entries %v, want %v", when, got, wantPending)
		}
		if got := ids(store.OutboxFailed); !slices.Equal(sorted(got), sorted(wantFailed)) {
			t.Errorf("%s: failed entries %v, want %v", when, got, wantFailed)
		}
		if n, err := s.OutboxPending(ctx); err != nil || n != int64(len(wantPending)) {
			t.Errorf("%s: OutboxPending = %d, %v; want %d", when, n, err, len(wantPending))
		}
		if counter != nil {
			if n, err := counter.OutboxFailed(ctx); err != nil || n != int64(len(wantFailed)) {
				t.Errorf("%s: OutboxFailed = %d, %v; want %d", when, n, err, len(wantFailed))
			}
		}
	}
	claim := func(at time.Time, want ...string) map[string]store.OutboxEntry {
		t.Helper()
		es, err := s.ClaimOutbox(ctx, at, time.Minute, 100)
		if err != nil {
			t.Fatalf("ClaimOutbox: %v", err)
		}
		got := map[string]store.OutboxEntry{}
		for _, e := range es {
			got[e.ID] = e
		}
		if !slices.Equal(sorted(slices.Collect(maps.Keys(got))), sorted(want)) {
			t.Fatalf("claimed %v, want %v", slices.Collect(maps.Keys(got)), want)
		}
		return got
	}
	settle := func(e store.OutboxEntry, status string, at time.Time) {
		t.Helper()
		e.Status, e.Attempts = status, e.Attempts+1
		if status == store.OutboxPending {
			e.NextAttemptAt = at
		} else {
			e.DoneAt = at
		}
		if err := s.SettleOutbox(ctx, e); err != nil {
			t.Fatalf("SettleOutbox(%s, %s): %v", e.ID, status, err)
		}
	}
	retry := func(id string, at time.Time) {
		t.Helper()
		if err := s.RetryOutbox(ctx, id, at); err != nil {
			t.Fatalf("RetryOutbox(%s): %v", id, err)
		}
	}

	// 24 entries: 18 delivered, 3 pending and 3 failed among them.
	kinds := func(i int) string {
		switch i % 8 {
		case 3:
			return store.OutboxPending
		case 6:
			return store.OutboxFailed
		}
		return store.OutboxDelivered
	}
	first := settleNew(t, s, "lic_st", 24, t0, kinds)
	P, F, D := first[store.OutboxPending], first[store.OutboxFailed], first[store.OutboxDelivered]
	if len(P) != 3 || len(F) != 3 || len(D) != 18 {
		t.Fatalf("settled %d pending, %d failed, %d delivered", len(P), len(F), len(D))
	}
	wantPending, wantFailed = slices.Clone(P), slices.Clone(F)
	check("after settling")
	if got := ids(store.OutboxDelivered); !slices.Equal(sorted(got), sorted(D)) {
		t.Errorf("delivered entries %v, want %v", got, D)
	}
	if got := ids(""); len(got) != 24 {
		t.Errorf("all entries: %d, want 24", len(got))
	}

	// A page goes on after its last entry, whatever left the list
	// before it.
	page, next, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 2})
	if err != nil || len(page) != 2 || next == "" || page[0].ID != P[0] || page[1].ID != P[1] {
		t.Fatalf("first pending page %+v, %q, %v; want %v", page, next, err, P[:2])
	}
	claimed := claim(t0.Add(2*time.Hour), P...)
	settle(claimed[P[0]], store.OutboxDelivered, t0.Add(2*time.Hour))
	page, next, err = s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, After: next, Limit: 2})
	if err != nil || len(page) != 1 || page[0].ID != P[2] || next != "" {
		t.Fatalf("second pending page %+v, %q, %v; want %s and the end", page, next, err, P[2])
	}
	settle(claimed[P[1]], store.OutboxFailed, t0.Add(3*time.Hour))
	settle(claimed[P[2]], store.OutboxPending, t0.Add(4*time.Hour))
	wantPending, wantFailed = []string{P[2]}, append(wantFailed, P[1])
	check("after settling the pending ones delivered, failed, pending")

	// pending -> failed -> retried -> pending -> failed -> retried ->
	// delivered
	retry(F[0], t0.Add(2*time.Hour))
	wantPending, wantFailed = []string{F[0], P[2]}, []string{F[1], F[2], P[1]}
	check("after a retry")
	if err := s.RetryOutbox(ctx, F[0], t0.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retrying a pending entry: %v, want ErrNotFound", err)
	}
	claimed = claim(t0.Add(5*time.Hour), F[0], P[2])
	settle(claimed[F[0]], store.OutboxFailed, t0.Add(5*time.Hour))
	settle(claimed[P[2]], store.OutboxPending, t0.Add(8*time.Hour))
	wantPending, wantFailed = []string{P[2]}, []string{F[0], F[1], F[2], P[1]}
	check("after failing the retried one again")
	retry(F[0], t0.Add(5*time.Hour))
	wantPending, wantFailed = []string{F[0], P[2]}, []string{F[1], F[2], P[1]}
	check("after retrying it again")
	claimed = claim(t0.Add(8*time.Hour), F[0], P[2])
	settle(claimed[F[0]], store.OutboxDelivered, t0.Add(8*time.Hour))
	settle(claimed[P[2]], store.OutboxDelivered, t0.Add(8*time.Hour))
	wantPending = nil
	check("after delivering them")

	// A trim takes the delivered entries and leaves the lists as they are.
	if n, err := s.TrimOutbox(ctx, t0.Add(1000*time.Hour), 100); err != nil || n != 21 {
		t.Fatalf("TrimOutbox: %d, %v; want the 21 delivered entries", n, err)
	}
	check("after a trim")
	if got := ids(""); !slices.Equal(sorted(got), sorted(wantFailed)) {
		t.Errorf("all entries after a trim: %v, want %v", got, wantFailed)
	}

	// Many delivered entries, a few others: listing the others reads
	// none of the delivered ones (they no longer decode).
	many := func(i int) string {
		switch i % 20 {
		case 7:
			return store.OutboxPending
		case 13:
			return store.OutboxFailed
		}
		return store.OutboxDelivered
	}
	second := settleNew(t, s, "lic_many", 80, t0.Add(10*time.Hour), many)
	if h.cfg.corrupt != nil {
		for _, id := range second[store.OutboxDelivered] {
			h.cfg.corrupt(t, s, id)
		}
	}
	wantPending = second[store.OutboxPending]
	wantFailed = append(wantFailed, second[store.OutboxFailed]...)
	check("with many delivered entries")
}

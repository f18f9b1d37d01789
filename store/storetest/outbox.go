package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func event(action, lic string, at time.Time) store.AuditEvent {
	return store.AuditEvent{At: at, Actor: "admin", Action: action, LicenseID: lic}
}

// outbox lists every entry of one status.
func outbox(t *testing.T, s store.Store, status string) []store.OutboxEntry {
	t.Helper()
	var out []store.OutboxEntry
	after := ""
	for i := 0; i < 100; i++ {
		page, next, err := s.OutboxEntries(context.Background(), store.OutboxQuery{Status: status, After: after, Limit: 2})
		if err != nil {
			t.Fatalf("OutboxEntries(%q): %v", status, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		after = next
	}
	t.Fatal("OutboxEntries never ended")
	return nil
}

func claimEntries(t *testing.T, s store.Store, at time.Time) map[string]store.OutboxEntry {
	t.Helper()
	es, err := s.ClaimOutbox(context.Background(), at, time.Minute, 100)
	if err != nil {
		t.Fatalf("ClaimOutbox: %v", err)
	}
	out := map[string]store.OutboxEntry{}
	for _, e := range es {
		out[e.Event.LicenseID+"/"+e.Event.Action] = e
	}
	return out
}

// An update's events are written with it, all or nothing.
func testOutboxWithChange(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	put(t, s, license("lic_ob"))
	_, err := s.UpdateLicense(ctx, "lic_ob", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Status = store.LicenseSuspended
		st.Events = append(st.Events, event(store.AuditLicenseSuspended, "lic_ob", t0), event(store.AuditLicenseLocked, "", t0))
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	for _, fn := range []func(st *store.LicenseState) (*store.LicenseState, error){
		func(st *store.LicenseState) (*store.LicenseState, error) {
			st.Events = append(st.Events, event(store.AuditLicenseReinstated, "lic_ob", t0))
			return nil, nil
		},
		func(st *store.LicenseState) (*store.LicenseState, error) {
			st.Events = append(st.Events, event(store.AuditLicenseReinstated, "lic_ob", t0))
			return st, refused
		},
	} {
		if _, err := s.UpdateLicense(ctx, "lic_ob", fn); err != nil && !errors.Is(err, refused) {
			t.Fatal(err)
		}
	}
	if st, _ := s.LicenseState(ctx, "lic_ob"); len(st.Events) != 0 {
		t.Errorf("a state read has events: %v", st.Events)
	}
	audit, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	pending := outbox(t, s, store.OutboxPending)
	if len(audit) != 2 || len(pending) != 2 {
		t.Fatalf("audit %+v, outbox %+v: want the two events of the write that committed", audit, pending)
	}
	for i, e := range pending {
		if e.Event.Action != audit[i].Action || e.Event.LicenseID != audit[i].LicenseID || e.ID == "" || e.Status != store.OutboxPending {
			t.Errorf("outbox entry %d = %+v, audit %+v", i, e, audit[i])
		}
	}
	if all := outbox(t, s, ""); len(all) != 2 {
		t.Errorf("all entries: %d, want 2", len(all))
	}
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0)}); err != nil {
		t.Fatal(err)
	}
	if got := outbox(t, s, store.OutboxPending); len(got) != 3 || got[2].Event.Action != store.AuditKeysRotated {
		t.Errorf("after AppendEvents: %+v", got)
	}
	if audit, _ := s.Audit(ctx, store.AuditQuery{Limit: 10}); len(audit) != 3 {
		t.Errorf("AppendEvents wrote %d audit entries in all, want 3", len(audit))
	}
}

// Claims take each licence's oldest pending entry only; settles move the
// queue on; a lapsed claim is claimable again and its settle refused.
func testOutboxClaims(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	for _, lic := range []string{"lic_a", "lic_b"} {
		put(t, s, license(lic))
	}
	update := func(lic string, actions ...string) { t.Helper(); writeEvents(t, s, lic, actions...) }
	update("lic_a", store.AuditLicenseSuspended)
	update("lic_a", store.AuditLicenseReinstated)
	update("lic_b", store.AuditLicenseLocked)
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0)}); err != nil {
		t.Fatal(err)
	}
	got := claimEntries(t, s, t0)
	if len(got) != 3 {
		t.Fatalf("claimed %v, want the head of each queue", keys(got))
	}
	a, b, g := got["lic_a/"+store.AuditLicenseSuspended], got["lic_b/"+store.AuditLicenseLocked], got["/"+store.AuditKeysRotated]
	if a.Claim == "" || b.Claim == "" || g.Claim == "" {
		t.Fatalf("claimed %v", got)
	}
	if again := claimEntries(t, s, t0.Add(time.Second)); len(again) != 0 {
		t.Fatalf("claimed entries already claimed: %v", keys(again))
	}
	a.Status, a.DoneAt, a.Attempts = store.OutboxDelivered, t0, 1
	if err := s.SettleOutbox(ctx, a); err != nil {
		t.Fatal(err)
	}
	b.Attempts, b.NextAttemptAt = 1, t0.Add(time.Hour)
	if err := s.SettleOutbox(ctx, b); err != nil {
		t.Fatal(err)
	}
	got = claimEntries(t, s, t0.Add(2*time.Second))
	if _, ok := got["lic_a/"+store.AuditLicenseReinstated]; !ok || len(got) != 1 {
		t.Fatalf("after settles claimed %v, want lic_a's second event only", keys(got))
	}
	// The global entry's claim lapsed a minute after t0: claimable again.
	got = claimEntries(t, s, t0.Add(time.Hour))
	g2, ok := got["/"+store.AuditKeysRotated]
	if !ok || g2.ID != g.ID {
		t.Fatalf("after the lease claimed %v, want the lapsed entry again", keys(got))
	}
	if _, ok := got["lic_b/"+store.AuditLicenseLocked]; !ok {
		t.Fatalf("lic_b's retry due at t0+1h not claimed: %v", keys(got))
	}
	g.Status = store.OutboxDelivered
	if err := s.SettleOutbox(ctx, g); !errors.Is(err, store.ErrNotClaimed) {
		t.Fatalf("settle with a lapsed claim: %v, want ErrNotClaimed", err)
	}
	g2.Status, g2.DoneAt = store.OutboxFailed, t0.Add(time.Hour)
	if err := s.SettleOutbox(ctx, g2); err != nil {
		t.Fatal(err)
	}
	failed := outbox(t, s, store.OutboxFailed)
	if len(failed) != 1 || failed[0].ID != g.ID {
		t.Fatalf("failed entries %+v", failed)
	}
	if err := s.RetryOutbox(ctx, a.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retrying a delivered entry: %v, want ErrNotFound", err)
	}
	if err := s.RetryOutbox(ctx, g.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if failed := outbox(t, s, store.OutboxFailed); len(failed) != 0 {
		t.Errorf("retried entry still failed: %+v", failed)
	}
	got = claimEntries(t, s, t0.Add(3*time.Hour))
	if e, ok := got["/"+store.AuditKeysRotated]; !ok || e.ID != g.ID || e.Attempts != 0 {
		t.Fatalf("after retry claimed %v", got)
	}
	if _, _, err := s.OutboxEntries(ctx, store.OutboxQuery{After: "not a cursor!", Limit: 1}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

// OutboxPending counts the pending entries, claimed or not, through every
// change of an entry's status.
func testOutboxPending(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	want := func(n int64, when string) {
		t.Helper()
		got, err := s.OutboxPending(ctx)
		if err != nil {
			t.Fatalf("OutboxPending %s: %v", when, err)
		}
		if got != n {
			t.Errorf("OutboxPending %s = %d, want %d", when, got, n)
		}
	}
	want(0, "on an empty store")
	for _, lic := range []string{"lic_a", "lic_b"} {
		put(t, s, license(lic))
	}
	update := func(lic string, actions ...string) { t.Helper(); writeEvents(t, s, lic, actions...) }
	update("lic_a", store.AuditLicenseSuspended, store.AuditLicenseReinstated)
	update("lic_b", store.AuditLicenseLocked)
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0)}); err != nil {
		t.Fatal(err)
	}
	// A write that does not commit queues nothing.
	_, _ = s.UpdateLicense(ctx, "lic_b", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Events = append(st.Events, event(store.AuditLicenseReinstated, "lic_b", t0))
		return nil, nil
	})
	want(4, "after appends")

	got := claimEntries(t, s, t0)
	if len(got) != 3 {
		t.Fatalf("claimed %v, want the head of each queue", keys(got))
	}
	want(4, "after a claim (claimed entries are still pending)")
	a, b, g := got["lic_a/"+store.AuditLicenseSuspended], got["lic_b/"+store.AuditLicenseLocked], got["/"+store.AuditKeysRotated]
	b.Attempts, b.NextAttemptAt = 1, t0.Add(time.Hour)
	if err := s.SettleOutbox(ctx, b); err != nil {
		t.Fatal(err)
	}
	want(4, "after settling one pending again (a retry later)")
	a.Status, a.DoneAt, a.Attempts = store.OutboxDelivered, t0, 1
	if err := s.SettleOutbox(ctx, a); err != nil {
		t.Fatal(err)
	}
	want(3, "after settling one delivered")
	if err := s.SettleOutbox(ctx, a); !errors.Is(err, store.ErrNotClaimed) {
		t.Fatalf("settling a settled entry again: %v, want ErrNotClaimed", err)
	}
	want(3, "after a refused second settle")
	g.Status, g.DoneAt, g.Attempts = store.OutboxFailed, t0, 1
	if err := s.SettleOutbox(ctx, g); err != nil {
		t.Fatal(err)
	}
	want(2, "after settling one failed")
	if err := s.RetryOutbox(ctx, a.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retrying a delivered entry: %v, want ErrNotFound", err)
	}
	want(2, "after a refused retry")
	if err := s.RetryOutbox(ctx, g.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want(3, "after retrying the failed one")
	if err := s.RetryOutbox(ctx, g.ID, t0.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retrying it twice: %v, want ErrNotFound", err)
	}
	want(3, "after retrying it twice")

	// Drain: every entry delivered, the count back to zero.
	at := t0.Add(2 * time.Hour)
	for i := 0; i < 10; i++ {
		es, err := s.ClaimOutbox(ctx, at, time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			e.Status, e.DoneAt = store.OutboxDelivered, at
			if err := s.SettleOutbox(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	want(0, "after delivering everything")
	if len(outbox(t, s, store.OutboxPending)) != 0 {
		t.Fatal("entries still pending after the drain")
	}
	if _, err := s.TrimOutbox(ctx, at.Add(48*time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	want(0, "after a trim")
}

// Trimming deletes delivered entries and old audit entries only.
func testOutboxTrim(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0), event(store.AuditKeysRotated, "", t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	es, err := s.ClaimOutbox(ctx, t0, time.Minute, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("claim: %v %v", es, err)
	}
	es[0].Status, es[0].DoneAt = store.OutboxDelivered, t0
	if err := s.SettleOutbox(ctx, es[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := s.TrimOutbox(ctx, t0.Add(48*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("TrimOutbox: %d, %v; want the delivered entry", n, err)
	}
	if all := outbox(t, s, ""); len(all) != 1 || all[0].Status != store.OutboxPending {
		t.Fatalf("after trim: %+v", all)
	}
	// A failed entry older than a delivered one is stepped over.
	es, err = s.ClaimOutbox(ctx, t0, time.Minute, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("claim: %v %v", es, err)
	}
	es[0].Status, es[0].DoneAt = store.OutboxFailed, t0
	if err := s.SettleOutbox(ctx, es[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	es, err = s.ClaimOutbox(ctx, t0.Add(2*time.Hour), time.Minute, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("claim: %v %v", es, err)
	}
	es[0].Status, es[0].DoneAt = store.OutboxDelivered, t0.Add(2*time.Hour)
	if err := s.SettleOutbox(ctx, es[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := s.TrimOutbox(ctx, t0.Add(48*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("TrimOutbox past a failed entry: %d, %v; want the delivered one", n, err)
	}
	if all := outbox(t, s, ""); len(all) != 1 || all[0].Status != store.OutboxFailed {
		t.Fatalf("after the second trim: %+v", all)
	}
	if n, err := s.TrimAudit(ctx, t0.Add(30*time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("TrimAudit: %d, %v; want the older entry", n, err)
	}
	if audit, _ := s.Audit(ctx, store.AuditQuery{Limit: 10}); len(audit) != 2 || !audit[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("audit after trim: %+v", audit)
	}
}

func keys(m map[string]store.OutboxEntry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// writeEvents writes a change of lic that carries one event per action.
func writeEvents(t *testing.T, s store.Store, lic string, actions ...string) {
	t.Helper()
	_, err := s.UpdateLicense(context.Background(), lic, func(st *store.LicenseState) (*store.LicenseState, error) {
		for _, a := range actions {
			st.Events = append(st.Events, event(a, lic, t0))
		}
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Paging goes on after the last entry listed, whatever left the list
// before it: an entry trimmed or retried between two pages moves no later
// entry out of the next page.
func testOutboxPaging(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	for i := range 5 {
		lic := fmt.Sprintf("lic_page%d", i)
		put(t, s, license(lic))
		writeEvents(t, s, lic, store.AuditLicenseSuspended)
	}
	// and one of no licence, last in the log: a page ends on it
	if err := s.AppendEvents(ctx, []store.AuditEvent{event(store.AuditKeysRotated, "", t0.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	page := func(status, after string) ([]store.OutboxEntry, string) {
		t.Helper()
		es, next, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: status, After: after, Limit: 2})
		if err != nil {
			t.Fatalf("OutboxEntries(%q, %q): %v", status, after, err)
		}
		return es, next
	}
	// rest pages on from after to the end.
	rest := func(status, after string) map[string]bool {
		t.Helper()
		seen := map[string]bool{}
		for i := 0; after != "" && i < 10; i++ {
			var es []store.OutboxEntry
			es, after = page(status, after)
			for _, e := range es {
				seen[e.ID] = true
			}
		}
		return seen
	}
	claimed := claimEntries(t, s, t0)
	if len(claimed) != 6 {
		t.Fatalf("claimed %d entries, want 6", len(claimed))
	}

	first, next := page("", "")
	if len(first) != 2 || next == "" {
		t.Fatalf("first page: %d entries, next %q", len(first), next)
	}
	gone := claimed[first[0].Event.LicenseID+"/"+store.AuditLicenseSuspended]
	gone.Status, gone.DoneAt, gone.Attempts = store.OutboxDelivered, t0, 1
	if err := s.SettleOutbox(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if n, err := s.TrimOutbox(ctx, t0.Add(48*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("TrimOutbox: %d, %v", n, err)
	}
	later := rest("", next)
	if len(later) != 4 || later[first[0].ID] || later[first[1].ID] {
		t.Fatalf("after a trim the next pages hold %v, want the 4 entries after %s and %s", later, first[0].ID, first[1].ID)
	}

	i := 0
	for _, e := range claimed {
		if e.ID == gone.ID {
			continue
		}
		e.Status, e.DoneAt, e.Attempts = store.OutboxFailed, t0.Add(time.Duration(i)*time.Minute), 1
		i++
		if err := s.SettleOutbox(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	first, next = page(store.OutboxFailed, "")
	if len(first) != 2 || next == "" {
		t.Fatalf("first failed page: %d entries, next %q", len(first), next)
	}
	if err := s.RetryOutbox(ctx, first[0].ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	later = rest(store.OutboxFailed, next)
	if len(later) != 3 || later[first[0].ID] || later[first[1].ID] {
		t.Fatalf("after a retry the next failed pages hold %v, want the 3 entries after %s and %s", later, first[0].ID, first[1].ID)
	}
}

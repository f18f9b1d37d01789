package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// timeline returns s as a store.AuditByLicense, which every backend
// implements.
func timeline(t *testing.T, s store.Store) store.AuditByLicense {
	t.Helper()
	a, ok := s.(store.AuditByLicense)
	if !ok {
		t.Fatalf("%T does not implement store.AuditByLicense", s)
	}
	return a
}

// licenseAudit reads a licence's timeline, failing the test on error.
func licenseAudit(t *testing.T, s store.Store, id string, limit int) []store.AuditEvent {
	t.Helper()
	evs, err := timeline(t, s).LicenseAudit(context.Background(), id, limit)
	if err != nil {
		t.Fatalf("LicenseAudit(%s, %d): %v", id, limit, err)
	}
	return evs
}

// withEvents writes evs with a change of licence id.
func withEvents(t *testing.T, s store.Store, id string, evs ...store.AuditEvent) {
	t.Helper()
	_, err := s.UpdateLicense(context.Background(), id, func(st *store.LicenseState) (*store.LicenseState, error) {
		if st.License == nil {
			st = license(id)
		}
		st.License.UpdatedAt = st.License.UpdatedAt.Add(time.Second)
		st.Events = evs
		return st, nil
	})
	if err != nil {
		t.Fatalf("UpdateLicense(%s): %v", id, err)
	}
}

// sameEvents reports whether got are want, ids aside (the store gives
// them) and times compared as instants.
func sameEvents(got, want []store.AuditEvent) bool {
	return slices.EqualFunc(got, want, func(g, w store.AuditEvent) bool {
		if !g.At.Equal(w.At) {
			return false
		}
		g.ID, w.ID, g.At, w.At = "", "", time.Time{}, time.Time{}
		return g == w
	})
}

// testLicenseTimeline: a licence's timeline lists the events written
// with its state, newest first, with every field the audit log keeps and
// an id that stays; events of another licence or of none are not on it,
// nor is anything a refused write carried.
func testLicenseTimeline(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	ev := func(action string, at time.Duration) store.AuditEvent {
		return store.AuditEvent{At: t0.Add(at), Actor: "installer", Action: action, LicenseID: "lic_a", Source: "envato", Product: "p"}
	}
	created := ev(store.AuditInstallationCreated, time.Microsecond)
	created.InstallationID, created.Detail, created.ClientIP = "ins_1", "acme.com", "198.51.100.7"
	moved := ev(store.AuditInstallationMoved, time.Second)
	moved.InstallationID, moved.ClientIP, moved.PreviousClientIP = "ins_1", "203.0.113.9", "198.51.100.7"
	moved.Reason = `a "quoted" reason, ünïcode, a \ and a ]`
	suspended := ev(store.AuditLicenseSuspended, 2*time.Second)
	suspended.Actor, suspended.Reason = "console:alice", "chargeback"
	other := ev(store.AuditLicenseLocked, 2*time.Second)
	other.LicenseID = "lic_b"
	none := ev(store.AuditRecheckGuardTripped, 2*time.Second)
	none.LicenseID = ""

	if got := licenseAudit(t, s, "lic_a", 10); got == nil || len(got) != 0 {
		t.Errorf("the timeline of a licence not stored = %#v, want an empty list", got)
	}
	withEvents(t, s, "lic_a", created, moved)
	withEvents(t, s, "lic_a", suspended, other, none)
	withEvents(t, s, "lic_a") // a write with no events
	if _, err := s.UpdateLicense(ctx, "lic_a", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Events = []store.AuditEvent{ev(store.AuditLicenseReinstated, 3*time.Second)}
		return nil, errors.New("refused")
	}); err == nil {
		t.Fatal("a refused write succeeded")
	}
	want := []store.AuditEvent{suspended, moved, created}
	got := licenseAudit(t, s, "lic_a", 10)
	if !sameEvents(got, want) {
		t.Fatalf("LicenseAudit(lic_a) =\n%+v\nwant\n%+v", got, want)
	}
	ids := map[string]bool{}
	for _, e := range got {
		if e.ID == "" || ids[e.ID] {
			t.Errorf("event ids %v: want each set and distinct", ids)
		}
		ids[e.ID] = true
	}
	if again := licenseAudit(t, s, "lic_a", 10); !slices.Equal(again, got) {
		t.Errorf("read again, the timeline = %+v, want %+v", again, got)
	}
	if top := licenseAudit(t, s, "lic_a", 2); !slices.Equal(top, got[:2]) {
		t.Errorf("LicenseAudit(lic_a, 2) = %+v, want the newest two", top)
	}
	if none := licenseAudit(t, s, "lic_a", 0); none == nil || len(none) != 0 {
		t.Errorf("LicenseAudit(lic_a, 0) = %#v, want an empty list", none)
	}
	if got := licenseAudit(t, s, "lic_b", 10); len(got) != 0 {
		t.Errorf("lic_b, never written, has a timeline: %+v", got)
	}
	// The audit log has every event, the timeline only lic_a's own.
	if all, err := s.Audit(ctx, store.AuditQuery{Limit: 100}); err != nil || len(all) != 5 {
		t.Errorf("audit log = %d events, %v; want 5", len(all), err)
	}
	// A licence's id that is a prefix of another's is apart.
	withEvents(t, s, "lic_a2", store.AuditEvent{At: t0, Actor: "admin", Action: store.AuditLicenseLocked, LicenseID: "lic_a2"})
	if got := licenseAudit(t, s, "lic_a", 10); len(got) != 3 {
		t.Errorf("after lic_a2's event, lic_a's timeline holds %d events, want 3", len(got))
	}
	if got := licenseAudit(t, s, "lic_a2", 10); len(got) != 1 {
		t.Errorf("lic_a2's timeline holds %d events, want 1", len(got))
	}
}

// testLicenseTimelineBound: a licence keeps its latest MaxTimeline
// events, however many writes brought them, and a read lists at most
// that many.
func testLicenseTimelineBound(t *testing.T, h *harness) {
	s := h.open(t)
	const n = store.MaxTimeline + 7
	var all []store.AuditEvent
	for i := range n {
		all = append(all, store.AuditEvent{At: t0.Add(time.Duration(i) * time.Second), Actor: "gateway",
			Action: store.AuditInstallationReactivated, LicenseID: "lic_1", Reason: fmt.Sprint("event ", i)})
	}
	for _, batch := range [][]store.AuditEvent{all[:60], all[60:100], all[100:]} {
		withEvents(t, s, "lic_1", batch...)
	}
	want := slices.Clone(all[n-store.MaxTimeline:])
	slices.Reverse(want)
	got := licenseAudit(t, s, "lic_1", 10*store.MaxTimeline)
	if !sameEvents(got, want) {
		t.Errorf("LicenseAudit = %d events (%s ... %s), want the latest %d, newest first",
			len(got), reasonOf(got, 0), reasonOf(got, len(got)-1), store.MaxTimeline)
	}
}

func reasonOf(evs []store.AuditEvent, i int) string {
	if i < 0 || i >= len(evs) {
		return ""
	}
	return evs[i].Reason
}

// testLicenseTimelineTrim: the audit log's retention takes the timeline's
// copies of the entries it trims, and keeps the rest.
func testLicenseTimelineTrim(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	ev := func(lic string, age time.Duration) store.AuditEvent {
		return store.AuditEvent{At: t0.Add(-age), Actor: "admin", Action: store.AuditLicenseLocked, LicenseID: lic, Reason: age.String()}
	}
	withEvents(t, s, "lic_a", ev("lic_a", 3*time.Hour), ev("lic_a", 2*time.Hour))
	withEvents(t, s, "lic_b", ev("lic_b", 2*time.Hour))
	withEvents(t, s, "lic_a", ev("lic_a", time.Hour))
	withEvents(t, s, "lic_b", ev("lic_b", 0))
	if _, err := s.TrimAudit(ctx, t0.Add(-90*time.Minute), 100); err != nil {
		t.Fatal(err)
	}
	if got, want := licenseAudit(t, s, "lic_a", 10), []store.AuditEvent{ev("lic_a", time.Hour)}; !sameEvents(got, want) {
		t.Errorf("lic_a's timeline after the trim = %+v, want %+v", got, want)
	}
	if got, want := licenseAudit(t, s, "lic_b", 10), []store.AuditEvent{ev("lic_b", 0)}; !sameEvents(got, want) {
		t.Errorf("lic_b's timeline after the trim = %+v, want %+v", got, want)
	}
}

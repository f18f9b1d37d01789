package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

func openEmbedded(t *testing.T) store.Store {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestRecheckAdminAndView: activation schedules the first check (one
// interval on, jittered); the author's recheck runs at once, without the
// lease, and the licence view shows what it found.
func TestRecheckAdminAndView(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	s.buy("d1", "digitaldownloads", ddpKey(1), truth{status: "active"})
	lic := s.license("d1")
	if wait := lic.NextCheckAt.Sub(simStart); wait > 6*time.Hour || wait < 6*time.Hour*9/10 {
		t.Fatalf("first check %v after activation, want about 6h", wait)
	}
	s.vendors["digitaldownloads"].set(ddpKey(1), func(tr *truth) { tr.status = "refunded" })
	s.clock.Advance(time.Hour)
	out, err := s.svc.RecheckLicense(context.Background(), s.ids["d1"])
	if err != nil {
		t.Fatal(err)
	}
	// Manual mode flags on the first definitive answer (issue 20).
	if out.Outcome != policy.CheckInvalid || out.Reason != "refunded" || out.Status != store.LicenseFlagged ||
		out.Definitive != 1 || out.Event != policy.EventFlagged {
		t.Fatalf("outcome %+v", out)
	}
	d, err := s.svc.License(context.Background(), s.ids["d1"])
	if err != nil {
		t.Fatal(err)
	}
	l := d.License
	if l.LastOutcome != "invalid" || l.LastReason != "refunded" || l.ConsecutiveDefinitive != 1 ||
		l.LastCheckedAt == nil || !l.LastCheckedAt.Equal(s.clock.Now()) || l.FirstDefinitiveAt == nil || l.NextCheckAt == nil {
		t.Fatalf("licence view %+v", l)
	}
	// A second answer a day on changes nothing more: it stays flagged.
	s.clock.Advance(24 * time.Hour)
	if out, err = s.svc.RecheckLicense(context.Background(), s.ids["d1"]); err != nil || out.Event != "" || out.Status != store.LicenseFlagged || out.Definitive != 2 {
		t.Fatalf("second recheck a day on: %+v, %v", out, err)
	}
	if _, err := s.svc.RecheckLicense(context.Background(), "lic_nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown licence: %v", err)
	}
	// The audit entry was written with the change.
	found := false
	for _, ev := range s.audit() {
		found = found || ev.Action == store.AuditLicenseFlagged && ev.LicenseID == s.ids["d1"] && ev.Reason == "refunded"
	}
	if !found {
		t.Fatal("no license.flagged audit entry")
	}
	rs, err := s.svc.RecheckStatus(context.Background())
	if err != nil || rs.Scheduled < 1 {
		t.Fatalf("RecheckStatus %+v, %v", rs, err)
	}
}

// TestRecheckModeOff: a product with mode off schedules nothing, and a
// licence left in the index from before leaves it at its next claim.
func TestRecheckModeOff(t *testing.T) {
	st := openEmbedded(t)
	s := newSim(t, st, policy.RecheckOff, "gw_a")
	s.buy("d1", "digitaldownloads", ddpKey(1), truth{status: "active"})
	if lic := s.license("d1"); !lic.NextCheckAt.IsZero() {
		t.Fatalf("mode off scheduled a check at %v", lic.NextCheckAt)
	}
	if s.svc.rechecks() {
		t.Fatal("a service whose every product is off runs the recheck worker")
	}
	if _, err := st.UpdateLicense(context.Background(), s.ids["d1"], func(ls *store.LicenseState) (*store.LicenseState, error) {
		ls.License.NextCheckAt = s.clock.Now()
		return ls, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := s.drain(s.svc); n != 1 {
		t.Fatalf("checked %d", n)
	}
	if lic := s.license("d1"); !lic.NextCheckAt.IsZero() || lic.Recheck.LastOutcome != "" {
		t.Fatalf("mode off: %+v", lic)
	}
	if s.vendors["digitaldownloads"].asked[ddpKey(1)] != 1 { // the activation's only
		t.Fatal("mode off asked the vendor")
	}
}

// TestReinstateRestartsTheCount: the author's reinstate of a flagged
// licence restarts the definitive count.
func TestReinstateRestartsTheCount(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	s.buy("d1", "digitaldownloads", ddpKey(1), truth{status: "active"})
	s.vendors["digitaldownloads"].set(ddpKey(1), func(tr *truth) { tr.status = "refunded" })
	ctx := context.Background()
	for range 2 {
		if _, err := s.svc.RecheckLicense(ctx, s.ids["d1"]); err != nil {
			t.Fatal(err)
		}
		s.clock.Advance(24 * time.Hour)
	}
	if lic := s.license("d1"); lic.Status != store.LicenseFlagged {
		t.Fatalf("not flagged: %s", lic.Status)
	}
	if _, err := s.svc.ChangeLicense(ctx, s.ids["d1"], ActionReinstate, "account closed, paid"); err != nil {
		t.Fatal(err)
	}
	if out, err := s.svc.RecheckLicense(ctx, s.ids["d1"]); err != nil || out.Definitive != 1 {
		t.Fatalf("after reinstate: %+v, %v", out, err)
	}
}

// TestRecheckPacesABatchToTheBudget: a batch of one source's due licences
// larger than its recheck bucket is checked in one step, each waiting the
// few milliseconds its call takes to refill, not deferred past the
// bucket's handful of calls (which left the worker at ~5 checks per
// source per pause whatever the rate).
func TestRecheckPacesABatchToTheBudget(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	s.burst = 10 // a recheck bucket of 5 calls, refilled every 20 ms at 6,000/m
	s.svc = s.service(s.store, policy.RecheckManual, "gw_a")
	for i := range RecheckBatch {
		s.buy(fmt.Sprintf("d%d", i), "digitaldownloads", ddpKey(i), truth{status: "active"})
	}
	ddp := s.vendors["digitaldownloads"]
	before := map[string]int{}
	ddp.mu.Lock()
	maps.Copy(before, ddp.asked)
	ddp.mu.Unlock()
	s.clock.Advance(7 * time.Hour) // every licence is due
	start := s.clock.Now()
	n, err := s.svc.RecheckOnce(context.Background())
	if err != nil || n != RecheckBatch {
		t.Fatalf("RecheckOnce: %d, %v; want %d", n, err, RecheckBatch)
	}
	for i := range RecheckBatch {
		name := fmt.Sprintf("d%d", i)
		if lic := s.license(name); lic.Recheck.LastOutcome != policy.CheckValid {
			t.Errorf("%s: last outcome %q (%s), want valid", name, lic.Recheck.LastOutcome, lic.Recheck.LastReason)
		}
		ddp.mu.Lock()
		asked := ddp.asked[ddpKey(i)] - before[ddpKey(i)]
		ddp.mu.Unlock()
		if asked != 1 {
			t.Errorf("%s asked %d times in the step, want 1", name, asked)
		}
	}
	// The waits were the refills' (11 calls at 20 ms), on the budget's clock.
	if took := s.clock.Now().Sub(start); took > time.Second {
		t.Errorf("the step waited %v for %d calls", took, RecheckBatch)
	}
}

// TestRecheckOfARemovedSource: a licence whose source left the config is
// rechecked as unknown (by hand and by the worker), not a panic.
func TestRecheckOfARemovedSource(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	s.buy("d1", "digitaldownloads", ddpKey(1), truth{status: "active"})
	delete(s.svc.cfg.Sources, "digitaldownloads")
	out, err := s.svc.RecheckLicense(context.Background(), s.ids["d1"])
	if err != nil || out.Outcome != policy.CheckUnknown || out.Status != store.LicenseActive {
		t.Fatalf("recheck by hand: %+v, %v", out, err)
	}
	s.clock.Advance(7 * time.Hour)
	if n, err := s.svc.RecheckOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("worker step: %d, %v", n, err)
	}
	if lic := s.license("d1"); lic.Status != store.LicenseActive || lic.Recheck.LastOutcome != policy.CheckUnknown {
		t.Fatalf("after the worker: %s, last %q", lic.Status, lic.Recheck.LastOutcome)
	}
}

// Review finding on the worker's wake-up: a check scheduled while the
// worker is awake (after its due-index read, before it sleeps) shortens
// the sleep that follows; one scheduled later than the planned wake-up
// changes nothing.
func TestRecheckHintWhileAwake(t *testing.T) {
	w := &rechecker{wake: make(chan struct{}, 1)}
	now := time.Now()
	w.hint(now.Add(time.Hour)) // later than any sleep: no effect
	w.hint(now.Add(-time.Second))
	start := time.Now()
	if !w.sleep(context.Background(), 10*time.Second, now) {
		t.Fatal("sleep reported a cancelled context")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("slept %v despite a check due already", took)
	}
	// A sleeping worker is woken by an earlier check.
	done := make(chan struct{})
	go func() { w.sleep(context.Background(), time.Minute, time.Now()); close(done) }()
	for w.wakeAt.Load() == 0 {
		runtime.Gosched()
	}
	w.hint(time.Now())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hint did not wake the sleeping worker")
	}
}

package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// Fresh without polling (SPEC section 7; issue 24): the dates and a
// buyer's ask, on the sim's fake clock, both stores.

// sell makes key known to the envato counterpart with tr and activates it
// as the sim's licence name, returning the activation.
func (s *sim) sell(name, key string, tr truth) *Activation {
	s.t.Helper()
	v := s.vendors["envato"]
	v.mu.Lock()
	v.keys[key] = &tr
	v.mu.Unlock()
	s.keys[name] = key
	a, err := s.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: simDomain(name), Product: "pe", IP: simIP})
	if err != nil {
		s.t.Fatalf("activating %s: %v", name, err)
	}
	s.ids[name] = a.License.ID
	return a
}

// tokens hands out a fresh access token of a's installation each call, as
// the product would refresh its hour-long one.
func (s *sim) tokens(a *Activation) func() string {
	refresh := a.RefreshToken
	return func() string {
		s.t.Helper()
		toks, err := s.svc.Refresh(context.Background(), refresh)
		if err != nil {
			s.t.Fatalf("refreshing the token: %v", err)
		}
		refresh = toks.RefreshToken
		return toks.AccessToken
	}
}

// staleCache is more than the gate cache's 2*TTL (default TTL 30s): past
// it the gate reads the store again (the sim runs no change feed).
const staleCache = 2 * time.Minute

// TestSupportDateCheck: a licence is due just after its support_until
// when that comes before its next scheduled check; the buyer who renewed
// meanwhile is refused by require support_active only until that check,
// and a licence whose support simply lapsed goes back to its schedule.
func TestSupportDateCheck(t *testing.T) {
	for name, open := range simStores(t) {
		t.Run(name, func(t *testing.T) { supportDateCheck(t, open(t)) })
	}
}

func supportDateCheck(t *testing.T, st store.Store) {
	ctx := context.Background()
	s := newSim(t, st, policy.RecheckManual, "gw_a")
	support := simStart.Add(2 * time.Hour) // the schedule's check is ~6h on
	renewed := simStart.AddDate(1, 0, 0)
	a := s.sell("e1", uuidKey('e', 1), truth{status: "active", support: tp(support)})
	s.sell("e2", uuidKey('e', 2), truth{status: "active", support: tp(support)})
	for _, name := range []string{"e1", "e2"} {
		if due := s.license(name).NextCheckAt; !due.Equal(support.Add(dateSlack)) {
			t.Fatalf("%s due %v, want a minute after support_until %v", name, due, support)
		}
	}
	gate := s.svc.Gate([]string{"pe"}, WithRequirements(Requirement{SupportActive: true}))
	token := s.tokens(a)
	admit := func() error { _, err := gate.Admit(ctx, token(), 0); return err }
	if err := admit(); err != nil {
		t.Fatalf("with support: %v", err)
	}

	s.clock.Advance(support.Sub(s.clock.Now()) + 30*time.Second)
	wantCode(t, admit(), CodeRequirementNotMet)
	if n := s.drain(s.svc); n != 0 {
		t.Fatalf("%d checks before the date's slack ran out", n)
	}

	// e1's buyer renews at Envato; e2's does not.
	s.vendors["envato"].set(s.keys["e1"], func(tr *truth) { tr.support = tp(renewed) })
	s.clock.Advance(dateSlack)
	if n := s.drain(s.svc); n != 2 {
		t.Fatalf("%d licences checked at their support date, want 2", n)
	}
	e1, e2 := s.license("e1"), s.license("e2")
	if e1.SupportUntil == nil || !e1.SupportUntil.Equal(renewed) {
		t.Fatalf("e1's renewal not taken: support_until %v", e1.SupportUntil)
	}
	s.clock.Advance(staleCache)
	if err := admit(); err != nil {
		t.Fatalf("after the date check saw the renewal: %v", err)
	}
	// Both go back to the schedule: a support date past, or a year off, is
	// no reason to check sooner.
	for name, lic := range map[string]*store.License{"e1": e1, "e2": e2} {
		if wait := lic.NextCheckAt.Sub(s.clock.Now()); wait < 5*time.Hour {
			t.Errorf("%s due again in %v, want the schedule's ~6h", name, wait)
		}
	}
	if !audited(s, store.AuditLicenseRenewed, s.ids["e1"]) {
		t.Error("no license.renewed for e1's support renewal")
	}
}

// audited reports whether the audit holds action for licence id.
func audited(s *sim, action, id string) bool {
	for _, ev := range s.audit() {
		if ev.Action == action && ev.LicenseID == id {
			return true
		}
	}
	return false
}

// TestStatusRefresh: the buyer's "I renewed" rechecks at once and answers
// the licence after it; a second ask within refresh_cooldown is 429 with
// Retry-After and asks nobody; an outage answers the stored licence with
// checked false, never an error about it; an installation that lost its
// tokens cannot ask.
func TestStatusRefresh(t *testing.T) {
	for name, open := range simStores(t) {
		t.Run(name, func(t *testing.T) { statusRefresh(t, open(t)) })
	}
}

func statusRefresh(t *testing.T, st store.Store) {
	ctx := context.Background()
	s := newSim(t, st, policy.RecheckManual, "gw_a")
	support := simStart.Add(time.Hour)
	a := s.sell("e1", uuidKey('e', 1), truth{status: "active", support: tp(support)})
	token := s.tokens(a)
	key := s.keys["e1"]
	envato := s.vendors["envato"]
	asked := func() int { envato.mu.Lock(); defer envato.mu.Unlock(); return envato.asked[key] }

	s.clock.Advance(2 * time.Hour) // support lapsed
	envato.set(key, func(tr *truth) { tr.support = tp(simStart.AddDate(1, 0, 0)) })
	before := asked()
	v, checked, err := s.svc.RefreshStatus(ctx, token())
	if err != nil || !checked || !v.SupportActive || asked() != before+1 {
		t.Fatalf("refresh after renewing: checked %v, support_active %v, asked %d times, %v", checked, v != nil && v.SupportActive, asked()-before, err)
	}

	// Within the cooldown: refused with the wait, and nobody is asked.
	s.clock.Advance(3 * time.Minute)
	_, _, err = s.svc.RefreshStatus(ctx, token())
	if e := wantCode(t, err, CodeRefreshCooldown); e.RetryAfter != 7*time.Minute {
		t.Fatalf("Retry-After %v, want 7m", e.RetryAfter)
	}
	if asked() != before+1 {
		t.Fatal("a refused refresh asked the marketplace")
	}

	// Past it, during an outage: the stored block, checked false.
	s.clock.Advance(7 * time.Minute)
	envato.mode.Store(vendor5xx)
	v, checked, err = s.svc.RefreshStatus(ctx, token())
	if err != nil || checked || v == nil || !v.SupportActive {
		t.Fatalf("refresh during an outage: %+v, checked %v, %v", v, checked, err)
	}
	envato.mode.Store(vendorOK)

	// The refund a refresh sees flags the licence (manual mode), as a
	// scheduled check would; the block says so.
	s.clock.Advance(DefaultRefreshCooldown)
	envato.set(key, func(tr *truth) { tr.status = "refunded" })
	if v, checked, err = s.svc.RefreshStatus(ctx, token()); err != nil || !checked || v.Status != store.LicenseFlagged {
		t.Fatalf("refresh after a refund: %+v, checked %v, %v", v, checked, err)
	}

	// A token that no longer holds: refused before anything is asked.
	last := token()
	if err := s.svc.Deactivate(ctx, last, simIP); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(DefaultRefreshCooldown)
	n := asked()
	_, _, err = s.svc.RefreshStatus(ctx, last)
	wantCode(t, err, CodeInstallationInactive)
	if asked() != n {
		t.Fatal("a deactivated installation's refresh asked the marketplace")
	}
}

// TestSupportDateAfterACheck: a support_until that falls inside the
// interval only at a later check (support months away at activation, a
// week's interval) is taken at that check, not just at activation.
func TestSupportDateAfterACheck(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	support := simStart.Add(10 * time.Hour) // past the first check (~6h), before the second (~12h)
	s.sell("e1", uuidKey('e', 1), truth{status: "active", support: tp(support)})
	first := s.license("e1").NextCheckAt
	if !first.Before(support) {
		t.Fatalf("first check %v, want the schedule's, before support_until %v", first, support)
	}
	s.clock.Advance(first.Sub(s.clock.Now()))
	if n := s.drain(s.svc); n != 1 {
		t.Fatalf("%d checks at the first due time, want 1", n)
	}
	if due := s.license("e1").NextCheckAt; !due.Equal(support.Add(dateSlack)) {
		t.Fatalf("after the first check due %v, want a minute after support_until %v", due, support)
	}
}

// A buyer's ask never takes a licence out of service: in auto mode with
// confirm 1, a refund it sees flags the licence and makes it due at once,
// and the schedule (under its guard) suspends it.
func TestStatusRefreshFlagsRatherThanSuspends(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, openEmbedded(t), policy.RecheckAuto, "gw_a")
	s.svc.cfg.Products["pe"].recheck.Confirm = 1
	a := s.sell("e1", uuidKey('e', 1), truth{status: "active"})
	s.vendors["envato"].set(s.keys["e1"], func(tr *truth) { tr.status = "refunded" })
	s.clock.Advance(time.Minute)
	v, checked, err := s.svc.RefreshStatus(ctx, a.AccessToken)
	if err != nil || !checked || v.Status != store.LicenseFlagged {
		t.Fatalf("a buyer's ask that sees a refund: %+v, checked %v, %v", v, checked, err)
	}
	if due := s.license("e1").NextCheckAt; due.After(s.clock.Now()) {
		t.Fatalf("flagged by an ask, due %v, want at once", due)
	}
	if n := s.drain(s.svc); n != 1 {
		t.Fatalf("%d scheduled checks, want 1", n)
	}
	if st := s.license("e1").Status; st != store.LicenseSuspended {
		t.Fatalf("after the schedule's check: %s, want suspended", st)
	}
}

// An ask that cannot be made now (the source's budget paused by a 429's
// Retry-After, or mode off) asks nobody, moves no schedule and gives its
// cooldown back; one that reached the source during an outage keeps it.
// On a licence out of service the stored block is the answer, checked
// false, not an error.
func TestStatusRefreshNotNow(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	a := s.sell("e1", uuidKey('e', 1), truth{status: "active"})
	key, envato := s.keys["e1"], s.vendors["envato"]
	asked := func() int { envato.mu.Lock(); defer envato.mu.Unlock(); return envato.asked[key] }
	if _, err := s.svc.ChangeLicense(ctx, s.ids["e1"], ActionSuspend, "chargeback"); err != nil {
		t.Fatal(err)
	}

	envato.mode.Store(vendor429) // the answer pauses the source for an hour
	v, checked, err := s.svc.RefreshStatus(ctx, a.RefreshToken)
	if err != nil || checked || v.Status != store.LicenseSuspended {
		t.Fatalf("an ask answered 429: %+v, checked %v, %v", v, checked, err)
	}
	_, _, err = s.svc.RefreshStatus(ctx, a.RefreshToken)
	wantCode(t, err, CodeRefreshCooldown) // it reached the source: the cooldown holds

	envato.mode.Store(vendorOK) // answering again, but the pause runs an hour
	n, due := asked(), s.license("e1").NextCheckAt
	s.clock.Advance(DefaultRefreshCooldown)
	for i := range 2 { // the second: the first gave its cooldown back
		v, checked, err = s.svc.RefreshStatus(ctx, a.RefreshToken)
		if err != nil || checked || v.Status != store.LicenseSuspended {
			t.Fatalf("ask %d during the pause: %+v, checked %v, %v", i, v, checked, err)
		}
	}
	if asked() != n {
		t.Fatalf("asks during the pause reached the source %d times", asked()-n)
	}
	if got := s.license("e1").NextCheckAt; !got.Equal(due) {
		t.Fatalf("a deferred ask moved the schedule from %v to %v", due, got)
	}
}

// Mode off: an ask asks nobody and costs no cooldown.
func TestStatusRefreshModeOff(t *testing.T) {
	ctx := context.Background()
	s := newSim(t, openEmbedded(t), policy.RecheckOff, "gw_a")
	a := s.sell("e1", uuidKey('e', 1), truth{status: "active"})
	for i := range 2 {
		v, checked, err := s.svc.RefreshStatus(ctx, a.AccessToken)
		if err != nil || checked || v == nil {
			t.Fatalf("ask %d in mode off: %+v, checked %v, %v", i, v, checked, err)
		}
	}
	if n := s.vendors["envato"].asked[s.keys["e1"]]; n != 1 { // the activation's
		t.Fatalf("the source was asked %d times, want once (the activation)", n)
	}
}

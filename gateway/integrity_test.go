package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// try activates key on domain from the client address ip.
func (f *fixture) try(key, domain, ip string) (*Activation, error) {
	return f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: domain, ClientIP: ip})
}

func (f *fixture) from(key, domain, ip string) *Activation {
	f.t.Helper()
	a, err := f.try(key, domain, ip)
	if err != nil {
		f.t.Fatalf("activating %s on %s from %s: %v", key, domain, ip, err)
	}
	return a
}

// state is the licence's stored state.
func (f *fixture) state(licenseID string) *store.LicenseState {
	f.t.Helper()
	st, err := f.store.LicenseState(context.Background(), licenseID)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// events returns the audit events with the action, oldest first.
func (f *fixture) events(action string) []store.AuditEvent {
	f.t.Helper()
	evs, err := f.store.Audit(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// A re-activation on an active domain supersedes the installation's
// earlier tokens (access and refresh) and audits both client addresses.
func TestReactivationSupersedesEarlierTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	buyer := f.from("KEY-1", "buyer.com", "198.51.100.7")
	clone := f.from("KEY-1", "www.buyer.com", "203.0.113.9")
	if clone.Created || clone.InstallationID != buyer.InstallationID {
		t.Fatalf("re-activation: created %v, installation %s; want 200 for %s", clone.Created, clone.InstallationID, buyer.InstallationID)
	}
	_, err := f.admit(buyer.AccessToken)
	wantCode(t, err, CodeTokenRevoked)
	// The superseded refresh family is deleted (storage per installation
	// stays O(1), issue 20 N5): its token is unknown now.
	wantCode(t, firstErr(f.svc.Refresh(ctx, buyer.RefreshToken)), CodeInvalidToken)
	if _, err := f.admit(clone.AccessToken); err != nil {
		t.Fatalf("the newest token: %v", err)
	}
	evs := f.events(store.AuditInstallationReactivated)
	if len(evs) != 1 {
		t.Fatalf("%d reactivated events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.ClientIP != "203.0.113.9" || ev.PreviousClientIP != "198.51.100.7" || ev.InstallationID != buyer.InstallationID || ev.Reason != "from another network" {
		t.Fatalf("reactivated event %+v", ev)
	}
	// The buyer's reinstall takes the domain back: the clone's tokens die.
	back := f.from("KEY-1", "buyer.com", "198.51.100.7")
	_, err = f.admit(clone.AccessToken)
	wantCode(t, err, CodeTokenRevoked)
	if _, err := f.admit(back.AccessToken); err != nil {
		t.Fatal(err)
	}
	if st := f.state(back.License.ID); st.Installations[0].ClientIP != "198.51.100.7" || st.Installations[0].Generation != 3 {
		t.Fatalf("installation after two re-activations: %+v", st.Installations[0])
	}
}

// An Idempotency-Key retry returns the first answer and supersedes
// nothing, also when the retry arrives while the first is at work.
func TestIdempotentRetrySupersedesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := ActivateRequest{Key: "KEY-1", Domain: "a.com", ClientIP: "198.51.100.7"}
	first, err := f.svc.ActivateIdempotent(ctx, "k1", req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ActivateIdempotent(ctx, "k1", req); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admit(first.AccessToken); err != nil {
		t.Fatalf("the first answer's token after a retry: %v", err)
	}
	if n := len(f.events(store.AuditInstallationReactivated)); n != 0 {
		t.Fatalf("%d re-activations audited for a retry", n)
	}

	// Concurrent retries of a re-activation: one re-activation, one answer.
	var wg sync.WaitGroup
	answers := make([]*Activation, 8)
	errs := make([]error, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = f.svc.ActivateIdempotent(ctx, "k2", req)
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if errs[i] != nil || a.AccessToken != answers[0].AccessToken {
			t.Fatalf("retry %d: %v, or another answer than the first", i, errs[i])
		}
	}
	if _, err := f.admit(answers[0].AccessToken); err != nil {
		t.Fatalf("the concurrent retries' token: %v", err)
	}
	if n := len(f.events(store.AuditInstallationReactivated)); n != 1 {
		t.Fatalf("%d re-activations audited for one re-activation retried 8 times", n)
	}
}

// Distinct production domains attempted, refused ones included, past
// leak_threshold lock the licence; existing installations keep working;
// unlock restores activation.
func TestLeakThresholdLocksOnDistinctDomains(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			ctx := context.Background()
			buyer := f.from("KEY-1", "buyer.com", "198.51.100.7")
			lic := buyer.License.ID
			for i := 1; i <= 4; i++ { // 5 distinct domains in all: the threshold
				_, err := f.try("KEY-1", fmt.Sprintf("claim%d.com", i), "203.0.113.9")
				wantCode(t, err, CodeActivationLimit)
			}
			if f.state(lic).License.Locked {
				t.Fatal("locked at the threshold")
			}
			_, err := f.try("KEY-1", "claim5.com", "203.0.113.9")
			wantCode(t, err, CodeLicenseLocked)
			st := f.state(lic)
			if !st.License.Locked || len(st.Installations) != 1 {
				t.Fatalf("after the sixth domain: locked %v, %d installations", st.License.Locked, len(st.Installations))
			}
			locks := f.events(store.AuditLicenseLocked)
			if len(locks) != 1 || locks[0].Actor != ActorGateway || !strings.Contains(locks[0].Reason, "5 distinct production domains") ||
				strings.Contains(locks[0].Reason+locks[0].Detail, "buyer.com") || strings.Contains(locks[0].Reason+locks[0].Detail, "claim") {
				t.Fatalf("lock events %+v", locks)
			}
			// Locked: no new activation, no re-activation; the buyer's
			// tokens keep working.
			wantCode(t, firstErr(f.try("KEY-1", "buyer.com", "203.0.113.9")), CodeLicenseLocked)
			wantCode(t, firstErr(f.try("KEY-1", "other.test", "203.0.113.9")), CodeLicenseLocked)
			if _, err := f.admit(buyer.AccessToken); err != nil {
				t.Fatalf("buyer's token on a locked licence: %v", err)
			}
			if _, err := f.svc.Refresh(ctx, buyer.RefreshToken); err != nil {
				t.Fatalf("buyer's refresh on a locked licence: %v", err)
			}
			// The author unlocks: activation works again, and the
			// sightings that locked it do not lock it again at once.
			if _, err := f.svc.ChangeLicense(ctx, lic, ActionUnlock, "buyer confirmed"); err != nil {
				t.Fatal(err)
			}
			f.from("KEY-1", "buyer.com", "198.51.100.7")
			wantCode(t, firstErr(f.try("KEY-1", "claim6.com", "203.0.113.9")), CodeActivationLimit)
		})
	}
}

// Re-activations of one installation from more distinct client networks
// than leak_threshold lock the licence; the crossing one is refused, so
// the buyer's newest token stays admitted. Re-activations from the same
// network (any address in its /24) never count.
func TestLeakThresholdLocksOnDistinctNetworks(t *testing.T) {
	f := newFixture(t)
	buyerIP := "198.51.100.7"
	buyer := f.from("KEY-1", "buyer.com", buyerIP)
	for i := range 10 { // honest reinstalls from the buyer's network
		buyer = f.from("KEY-1", "buyer.com", fmt.Sprintf("198.51.100.%d", 10+i))
	}
	buyer = f.from("KEY-1", "buyer.com", buyerIP)
	// A leaked code claims the domain from other networks, the buyer
	// takes it back from its own (which never counts, issue 20 N1); once
	// it has, other networks are refused for the cooldown (no ping-pong),
	// each attempt still a sighting: 5 foreign networks are the threshold.
	for i := 1; i <= 5; i++ {
		_, err := f.try("KEY-1", "buyer.com", fmt.Sprintf("203.0.%d.9", i))
		if i > 1 {
			wantCode(t, err, CodeInstallationContested)
		} else if err != nil {
			t.Fatal(err)
		}
		buyer = f.from("KEY-1", "buyer.com", buyerIP)
	}
	if f.state(buyer.License.ID).License.Locked {
		t.Fatal("locked at the threshold")
	}
	_, err := f.try("KEY-1", "buyer.com", "203.0.99.9")
	wantCode(t, err, CodeLicenseLocked)
	if _, err := f.admit(buyer.AccessToken); err != nil {
		t.Fatalf("the buyer's newest token after the lock: %v", err)
	}
	locks := f.events(store.AuditLicenseLocked)
	if len(locks) != 1 || !strings.Contains(locks[0].Reason, "5 distinct client networks") || locks[0].ClientIP != "203.0.99.9" {
		t.Fatalf("lock events %+v", locks)
	}
}

// Attempts spread wider than the window never lock; the limit grows with
// the licence's slots (twice the slots when that is more).
func TestLeakThresholdWindowAndSlots(t *testing.T) {
	f := newFixture(t)
	f.from("KEY-1", "buyer.com", "198.51.100.7")
	for i := range 30 {
		f.clock.Advance(6 * time.Hour) // 4 in any 24h, and buyer.com: 5 distinct domains
		wantCode(t, firstErr(f.try("KEY-1", fmt.Sprintf("claim%d.com", i), "203.0.113.9")), CodeActivationLimit)
	}
	if st := f.state(f.from("KEY-1", "buyer.com", "198.51.100.7").License.ID); st.License.Locked || len(st.License.Sightings) > 6 {
		t.Fatalf("locked %v with %d sightings", st.License.Locked, len(st.License.Sightings))
	}

	g := newFixture(t)
	g.svc.cfg.Products["p"].Rules.Activations = 10 // an agency: 20 domains tolerated
	for i := range 20 {
		_, err := g.try("KEY-1", fmt.Sprintf("site%d.com", i), "198.51.100.7")
		if i >= 10 {
			wantCode(t, err, CodeActivationLimit)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, firstErr(g.try("KEY-1", "site20.com", "198.51.100.7")), CodeLicenseLocked)

	h := newFixture(t)
	h.svc.cfg.Products["p"].Leak = policy.LeakRule{Threshold: 2, Window: time.Hour}
	h.from("KEY-1", "a.com", "198.51.100.7")
	wantCode(t, firstErr(h.try("KEY-1", "b.com", "198.51.100.7")), CodeActivationLimit)
	wantCode(t, firstErr(h.try("KEY-1", "c.com", "198.51.100.7")), CodeLicenseLocked)
}

// The 409 lists the slot holders with masked domains, labels and dates,
// and no domain in the clear.
func TestActivationLimitListsMaskedHolders(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.Activate(context.Background(), ActivateRequest{Key: "KEY-1", Domain: "buyer.com", Label: "shop", ClientIP: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	created := f.clock.Now()
	f.clock.Advance(time.Minute)
	_, err = f.try("KEY-1", "claim.com", "203.0.113.9")
	e := wantCode(t, err, CodeActivationLimit)
	if len(e.Activations) != 1 {
		t.Fatalf("activations %+v", e.Activations)
	}
	if h := e.Activations[0]; h.Domain != "b***r.com" || h.Label != "shop" || !h.CreatedAt.Equal(created) || h.LastSeenAt != nil {
		t.Fatalf("holder %+v", h)
	}
	raw, _ := json.Marshal(e.Activations)
	if strings.Contains(string(raw)+e.Detail, "buyer") {
		t.Fatalf("the answer names the buyer's domain: %s %s", raw, e.Detail)
	}
	if !strings.Contains(string(raw), `"last_seen_at":null`) {
		t.Fatalf("no last_seen_at member: %s", raw)
	}
}

// Free installs are capped with the defaults: 5 local per licence, 3
// staging per production domain (SPEC section 4), on both stores.
func TestFreeInstallCaps(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			if created, refused := f.tally(50, "site%d.test", "local"); created != policy.DefaultLocalCap || refused != 50-policy.DefaultLocalCap {
				t.Fatalf("50 local activations: %d created, %d refused; want 5 and 45", created, refused)
			}
			for _, prod := range []string{"buyer.com", "second.com"} {
				if prod == "second.com" {
					f.svc.cfg.Products["p"].Rules.Activations = 2
				}
				f.from("KEY-1", prod, "198.51.100.7")
				if created, refused := f.tally(10, "s%d."+prod, "staging"); created != policy.DefaultStagingCap || refused != 10-policy.DefaultStagingCap {
					t.Fatalf("10 staging activations under %s: %d created, %d refused; want 3 and 7", prod, created, refused)
				}
			}
		})
	}
}

// tally activates KEY-1 on n domains (pattern with %d) and counts the new
// installations of class and the activation_limit_reached refusals.
func (f *fixture) tally(n int, pattern, class string) (created, refused int) {
	f.t.Helper()
	for i := range n {
		a, err := f.try("KEY-1", fmt.Sprintf(pattern, i), "198.51.100.7")
		switch {
		case err != nil:
			wantCode(f.t, err, CodeActivationLimit)
			refused++
		case a.Created && a.License.InstallClass == class:
			created++
		}
	}
	return created, refused
}

// One licence through 10,000 activations, accepted and refused, with
// deactivations between them, over months: the stored record stays
// bounded (installations and sightings), and pruned installations leave
// the installation index too. On both stores.
func TestLicenseRecordStaysBounded(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			if raceEnabled && backend != "embedded" {
				t.Skip("10,000 activations under the race detector: on the embedded store only (both stores run without -race)")
			}
			f := newFixtureOn(t, backend)
			ctx := context.Background()
			buyer := f.from("KEY-1", "buyer.com", "198.51.100.7")
			lic := buyer.License.ID
			var live []*Activation // local installations to deactivate, oldest first
			firstLocal := ""
			accepted, refused, maxIns, maxSeen := 0, 0, 0, 0
			for i := range 10_000 {
				f.clock.Advance(7 * time.Minute) // ~49 days in all
				var domain string
				switch {
				case i%500 == 0:
					domain = fmt.Sprintf("claim%d.com", i) // refused, a domain sighting
				case i%500 == 1:
					domain = "buyer.com" // a re-activation from another network
				case i%500 == 2:
					// The buyer takes its site back from its own network
					// (left unchallenged for move_cooldown, the other
					// network would become the installation's own).
					domain = "buyer.com"
				case i%5 == 0:
					domain = fmt.Sprintf("s%d.buyer.com", i)
				default:
					domain = fmt.Sprintf("site%d.test", i)
				}
				ip := "198.51.100.7"
				if i%500 == 1 {
					ip = fmt.Sprintf("203.0.%d.9", i/500%250)
				}
				a, err := f.try("KEY-1", domain, ip)
				if err != nil {
					if e := AsError(err); e.Code != CodeActivationLimit {
						t.Fatalf("activation %d on %s: %v", i, domain, err)
					}
					refused++
				} else {
					accepted++
					if a.Created {
						live = append(live, a)
						if firstLocal == "" {
							firstLocal = a.InstallationID
						}
					}
				}
				if len(live) >= 4 && i%3 == 0 { // free the oldest
					if err := f.svc.Deactivate(ctx, live[0].RefreshToken, ""); err != nil {
						t.Fatalf("deactivating: %v", err)
					}
					live = live[1:]
				}
				if i%250 == 0 {
					st := f.state(lic)
					maxIns = max(maxIns, len(st.Installations))
					maxSeen = max(maxSeen, len(st.License.Sightings))
				}
			}
			st := f.state(lic)
			maxIns = max(maxIns, len(st.Installations))
			maxSeen = max(maxSeen, len(st.License.Sightings))
			t.Logf("%d accepted, %d refused; stored at most %d installations and %d sightings; finally %d and %d",
				accepted, refused, maxIns, maxSeen, len(st.Installations), len(st.License.Sightings))
			if accepted < 1000 || refused < 1000 {
				t.Fatalf("the test did not exercise both: %d accepted, %d refused", accepted, refused)
			}
			if st.License.Locked {
				t.Fatal("an honest pattern locked the licence")
			}
			// Active: 1 production + 5 local + 3 staging at most; ended: MaxEnded.
			if bound := 1 + policy.DefaultLocalCap + policy.DefaultStagingCap + policy.MaxEnded; maxIns > bound {
				t.Fatalf("%d installations stored, bound %d", maxIns, bound)
			}
			if limit := policy.DefaultLeakThreshold + 1; maxSeen > 2*limit {
				t.Fatalf("%d sightings stored, bound %d", maxSeen, 2*limit)
			}
			if _, err := f.store.InstallationLicense(ctx, firstLocal); err == nil {
				t.Fatal("a pruned installation is still in the installation index")
			}
			if _, err := f.admit(f.from("KEY-1", "buyer.com", "198.51.100.7").AccessToken); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// vendorSource is a marketplace that knows one key, counting the calls
// that reach it.
type vendorSource struct{ calls atomic.Int64 }

func (*vendorSource) Name() string { return "vendor" }
func (*vendorSource) CanonicalKey(k string) (string, error) {
	if !strings.HasPrefix(k, "V-") {
		return "", upstreams.ErrKeyFormat
	}
	return k, nil
}
func (s *vendorSource) Verify(_ context.Context, r upstreams.Request) upstreams.Verdict {
	s.calls.Add(1)
	if strings.HasPrefix(r.Key, "V-GOOD") {
		return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
	}
	return upstreams.InvalidVerdict(upstreams.NotFound)
}

// A flood of unknown keys spends the source's failure budget and is then
// answered rate_limited without reaching the source; valid keys give
// their call back, and stored licences are not asked again.
func TestFailureBudgetPerSource(t *testing.T) {
	f := newFixture(t)
	src := &vendorSource{}
	f.svc.cfg.Sources["vendor"] = src
	f.svc.cfg.Products["p"].Sources = []string{"keys", "vendor"}
	budget := NewFailureBudget(upstreams.Rate{Calls: 10, Period: time.Minute}, f.clock.Now)
	act := func(key string) error {
		_, err := f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: "a.com", Budget: budget})
		return err
	}
	// The valid key first, repeatedly: it costs the budget nothing.
	for range 20 {
		if err := act("V-GOOD"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var limited atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := act(fmt.Sprintf("V-%06d", i))
			if e := AsError(err); e.Code == CodeRateLimited {
				if e.RetryAfter <= 0 {
					t.Errorf("rate_limited without Retry-After")
				}
				limited.Add(1)
			} else if e.Code != CodeLicenseNotFound {
				t.Errorf("random key: %v", err)
			}
		}()
	}
	wg.Wait()
	// No client address: no network, so only the open half (5 of 10) is
	// spent; the reserve is for networks without a recent failure.
	if got := src.calls.Load(); got != 1+5 {
		t.Fatalf("%d calls reached the source, want 1 (the valid key, once) + 5 (the open half)", got)
	}
	if limited.Load() != 195 {
		t.Fatalf("%d answered rate_limited, want 195", limited.Load())
	}
	// A stored licence is answered from the store even now; a new valid
	// key waits for the budget to refill.
	if err := act("V-GOOD"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, act("V-NEWGOOD"), CodeRateLimited)
	f.clock.Advance(12 * time.Second)
	wantCode(t, act("V-NOPE"), CodeLicenseNotFound)
}

// Issue 20, N1: a leaked code plus the buyer's domain no longer takes the
// buyer's installation. The holder's re-activation from another network
// gets tokens the gate admits but that cannot deactivate or move the
// installation for move_cooldown (installation_contested, each attempt a
// sighting of its network); the buyer's re-activation from its own
// network supersedes them, even once the licence is locked; a foreign
// network left unchallenged for the cooldown becomes the home one.
func TestForeignReactivationCannotTakeTheInstallation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const buyerIP, holderIP = "198.51.100.7", "203.0.113.9"
	buyer := f.from("KEY-1", "buyer.com", buyerIP)
	holder := f.from("KEY-1", "buyer.com", holderIP)
	if _, err := f.admit(holder.AccessToken); err != nil {
		t.Fatalf("the holder's token at the gate: %v", err)
	}
	wantCode(t, f.svc.Deactivate(ctx, holder.AccessToken, holderIP), CodeInstallationContested)
	_, err := f.svc.Move(ctx, MoveRequest{Token: holder.RefreshToken, Domain: "holder.com", ClientIP: holderIP})
	e := wantCode(t, err, CodeInstallationContested)
	if e.RetryAfter != testCooldown {
		t.Fatalf("Retry-After %v, want the cooldown %v", e.RetryAfter, testCooldown)
	}
	if st := f.state(buyer.License.ID); len(st.License.Sightings) == 0 {
		t.Fatal("the refused attempts left no sighting")
	}

	// The buyer's own network wins, lock or not.
	back := f.from("KEY-1", "buyer.com", buyerIP)
	if _, err := f.admit(holder.AccessToken); err == nil {
		t.Fatal("the holder's token still admitted after the buyer's re-activation")
	}
	if _, err := f.svc.ChangeLicense(ctx, buyer.License.ID, ActionLock, "test"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, firstErr(f.try("KEY-1", "buyer.com", holderIP)), CodeLicenseLocked)
	back = f.from("KEY-1", "buyer.com", "198.51.100.200") // the same /24
	if err := f.svc.Deactivate(ctx, back.AccessToken, buyerIP); err != nil {
		t.Fatalf("the buyer's deactivate: %v", err)
	}
	evs := f.events(store.AuditInstallationDeactivated)
	if len(evs) != 1 || evs[0].ClientIP != buyerIP {
		t.Fatalf("installation.deactivated %+v, want the client address", evs)
	}
}

// A move to a new server: re-activating from the new network is foreign
// for the cooldown, then that network is home and may deactivate.
func TestForeignNetworkBecomesHomeAfterTheCooldown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.from("KEY-1", "buyer.com", "198.51.100.7")
	moved := f.from("KEY-1", "buyer.com", "192.0.2.10")
	wantCode(t, f.svc.Deactivate(ctx, moved.AccessToken, "192.0.2.10"), CodeInstallationContested)
	f.clock.Advance(testCooldown)
	if err := f.svc.Deactivate(ctx, moved.RefreshToken, "192.0.2.10"); err != nil {
		t.Fatalf("deactivate after the cooldown: %v", err)
	}
}

// Issue 20, N5: re-activation churn no longer grows the store. 300
// re-activations of one site from one client: each past the hour's room is
// 429 rate_limited with Retry-After and writes nothing; the superseded
// refresh families are deleted (one family per installation); the
// repeats' audit entries are coalesced into the first.
func TestReactivationChurnIsBounded(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			ctx := context.Background()
			first := f.from("KEY-1", "buyer.com", "198.51.100.7")
			var tokens []*Activation
			limited := 0
			for range 300 {
				a, err := f.try("KEY-1", "buyer.com", "198.51.100.7")
				if err != nil {
					e := wantCode(t, err, CodeRateLimited)
					if e.RetryAfter <= 0 || e.RetryAfter > time.Hour {
						t.Fatalf("Retry-After %v", e.RetryAfter)
					}
					limited++
					continue
				}
				tokens = append(tokens, a)
			}
			if len(tokens) != homeReactivations || limited != 300-homeReactivations {
				t.Fatalf("%d re-activations answered, %d limited; want %d and the rest", len(tokens), limited, homeReactivations)
			}
			// Only the newest pair's family is left.
			for _, a := range append([]*Activation{first}, tokens[:len(tokens)-1]...) {
				wantCode(t, firstErr(f.svc.Refresh(ctx, a.RefreshToken)), CodeInvalidToken)
			}
			if _, err := f.svc.Refresh(ctx, tokens[len(tokens)-1].RefreshToken); err != nil {
				t.Fatalf("the newest refresh token: %v", err)
			}
			if n := len(f.events(store.AuditInstallationReactivated)); n != 1 {
				t.Fatalf("%d installation.reactivated entries, want the first one only", n)
			}
			// The buyer's own network keeps its room when others use theirs.
			for i := range foreignReactivations + 2 {
				_, err := f.try("KEY-1", "buyer.com", fmt.Sprintf("203.0.113.%d", i+1))
				if i >= foreignReactivations {
					wantCode(t, err, CodeRateLimited)
				}
			}
			f.clock.Advance(time.Hour)
			f.from("KEY-1", "buyer.com", "198.51.100.7")
		})
	}
}

// Issue 20, N3: the per-source failure budget is shared fairly. Twelve
// client networks flood random well-formed keys while eight honest buyers,
// each on its own network, make their first activation: at least seven of
// the eight succeed, and the flood still reaches the source no more than
// the budget allows.
func TestFailureBudgetLeavesRoomForHonestFirstActivations(t *testing.T) {
	f := newFixture(t)
	src := &vendorSource{}
	f.svc.cfg.Sources["vendor"] = src
	f.svc.cfg.Products["p"].Sources = []string{"keys", "vendor"}
	budget := NewFailureBudget(upstreams.Rate{Calls: 30, Period: time.Minute}, f.clock.Now)
	act := func(key, ip, domain string) error {
		_, err := f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: domain, ClientIP: ip, Budget: budget})
		return err
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var floodCalls atomic.Int64
	for n := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				floodCalls.Add(1)
				_ = act(fmt.Sprintf("V-%02d%05d", n, i%100000), fmt.Sprintf("203.0.%d.%d", n, 1+i%200), "flood.com")
			}
		}()
	}
	// Let the flood spend what it can, the clock moving on meanwhile.
	for range 20 {
		for floodCalls.Load() < 200 {
			runtime.Gosched()
		}
		floodCalls.Store(0)
		f.clock.Advance(time.Second)
	}
	ok := 0
	for i := range 8 {
		err := act(fmt.Sprintf("V-GOOD%d", i), fmt.Sprintf("198.51.%d.7", 100+i), fmt.Sprintf("buyer%d.com", i))
		if err == nil {
			ok++
		} else {
			t.Logf("honest buyer %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if ok < 7 {
		t.Fatalf("%d of 8 honest first activations succeeded during the flood, want at least 7", ok)
	}
	// 20 s of a 30/m budget: at most its burst plus what refilled (and
	// the honest keys, vindicated, give theirs back).
	if got := src.calls.Load() - 8; got > 30+10+12 {
		t.Fatalf("the flood reached the source %d times", got)
	}
	t.Logf("honest first activations through the flood: %d of 8; flood calls at the source: %d", ok, src.calls.Load()-8)
}

// Issue 20, L2: a free staging answer would confirm a guessed parent as
// the buyer's domain, so staging attempts from another network than the
// production installation's count as domains toward leak_threshold:
// guessing sub.<guess> from a leaked code locks the licence; the buyer's
// own staging copies (from its network) count nothing.
func TestStagingProbesCountTowardTheLeakThreshold(t *testing.T) {
	f := newFixture(t)
	const buyerIP, holderIP = "198.51.100.7", "203.0.113.9"
	f.from("KEY-1", "buyer.com", buyerIP)
	for i := range 3 { // the buyer's own staging copies
		f.from("KEY-1", fmt.Sprintf("s%d.buyer.com", i), buyerIP)
	}
	if lic := f.state(licenseIDOf(t, f, "KEY-1")).License; len(lic.Sightings) != 1 {
		t.Fatalf("sightings after the buyer's own staging copies: %+v, want buyer.com only", lic.Sightings)
	}
	// The holder guesses: each guess is a production attempt (refused,
	// counted) or a staging one (counted too), until the lock.
	var err error
	for i, guess := range []string{"staging.guess1.com", "staging.guess2.com", "staging.guess3.com", "staging.guess4.com", "x.buyer.com", "y.buyer.com"} {
		_, err = f.try("KEY-1", guess, holderIP)
		if AsError(err).Code == CodeLicenseLocked {
			t.Logf("locked at guess %d", i+1)
			break
		}
	}
	wantCode(t, err, CodeLicenseLocked)
}

func licenseIDOf(t *testing.T, f *fixture, key string) string {
	t.Helper()
	return f.svc.licenseID("keys", key)
}

// A token minted after the gate's cached state (a re-activation or a new
// installation whose change notice has not arrived: Redis pub/sub is
// asynchronous) is checked against the store, not refused: the buyer's
// brand-new token must not come back token_revoked, which its installer
// takes for a dead credential. Seen under load in the e2e leak story.
func TestGateReadsThroughForATokenNewerThanItsCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gate := f.svc.Gate(nil)
	first := f.from("KEY-1", "buyer.com", "198.51.100.7")
	if _, err := gate.Admit(ctx, first.AccessToken, 0); err != nil { // cached at generation 1
		t.Fatal(err)
	}
	again := f.from("KEY-1", "buyer.com", "198.51.100.7") // no change notice reaches the cache here
	if _, err := gate.Admit(ctx, again.AccessToken, 0); err != nil {
		t.Fatalf("the re-activation's token against a cache of the generation before: %v", err)
	}
	_, err := gate.Admit(ctx, first.AccessToken, 0)
	wantCode(t, err, CodeTokenRevoked)
	local := f.from("KEY-1", "dev.test", "198.51.100.7")
	if _, err := gate.Admit(ctx, local.AccessToken, 0); err != nil {
		t.Fatalf("a new installation's token against a cache from before it: %v", err)
	}
}

// Review finding on N1: an installation recorded before the home network
// was kept (HomeIP empty, its last client address in ClientIP) is defended
// from that address: a holder re-activating twice from its own network
// does not become home, and cannot deactivate.
func TestForeignReactivationOfAnOlderRecord(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const buyerIP, holderIP = "198.51.100.7", "203.0.113.9"
	a := f.from("KEY-1", "buyer.com", buyerIP)
	if _, err := f.store.UpdateLicense(ctx, a.License.ID, func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installations[0].HomeIP, st.Installations[0].Family = "", ""
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	f.from("KEY-1", "buyer.com", holderIP)
	second := f.from("KEY-1", "buyer.com", holderIP)
	wantCode(t, f.svc.Deactivate(ctx, second.AccessToken, holderIP), CodeInstallationContested)
	if in := f.state(a.License.ID).Installations[0]; in.HomeIP != buyerIP {
		t.Fatalf("home %q after the holder's re-activations, want the buyer's %s", in.HomeIP, buyerIP)
	}
	f.from("KEY-1", "buyer.com", buyerIP) // the buyer takes it back
}

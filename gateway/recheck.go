package gateway

// The background recheck (SPEC section 7): one worker across the
// instances sharing a store, by a lease with a fencing token, asks each
// licence's source again when the licence is due, and applies
// policy.RecheckRules.Next to the answer.
//
//	RunRecheck           the worker: RecheckOnce in a loop, sleeping when
//	                     nothing is due or another instance holds the lease
//	                     (recheck_worker.go)
//	RecheckOnce          one step: take or renew the lease
//	                     (recheck_lease.go), claim a batch of due licences
//	                     (store.ClaimDue), check each (recheck_worker.go)
//	recheckLicense       one licence: pace by the source's recheck budget,
//	                     unseal the code, ask the source's side-effect-free
//	                     Recheck (recheck_source.go), apply the rules with
//	                     the source's guard (recheck_guard.go), write
//	                     licence and audit in one fenced update (here)
//	RecheckLicense       the admin's "recheck now": the same, under no lease
//	RecheckStatus        the due index, lease and guards for GET stats
//	                     (recheck_status.go)
//
// Nothing here changes a licence on an unknown answer but its next check;
// a definitive answer flags (manual) or, after the confirm rules and only
// while the source's mass-suspension guard is warm and not tripped,
// suspends (auto). Purchase codes are unsealed only to be handed to the
// source, and never logged.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// The worker's tuning.
const (
	// RecheckLease names the store lease the worker holds.
	RecheckLease = "recheck"
	// RecheckLeaseTTL is the lease's lifetime: an instance that dies
	// holding it is replaced within it. The holder renews at each third.
	RecheckLeaseTTL = 30 * time.Second
	// RecheckBatch is how many due licences one step claims.
	RecheckBatch = 16
	// RecheckClaim is how long a claimed licence is kept from other
	// claims: longer than a batch of checks can take, so a worker that
	// dies mid-batch leaves its licences due again soon after.
	RecheckClaim = 10 * time.Minute
	// recheckIdle is the longest the worker sleeps between steps when
	// nothing is due sooner.
	recheckIdle = RecheckLeaseTTL / 3
	// recheckStandby is how often an instance without the lease tries it.
	recheckStandby = RecheckLeaseTTL / 6
	// recheckPace is the longest the worker waits for a source's recheck
	// budget before it defers the licence instead: a call of the recheck
	// share of any rate of 60/m or more. It is well inside the lease's
	// renewal third, which the worker renews between checks.
	recheckPace = 2 * time.Second
	// recheckCallTimeout bounds the worker's wait for one source call. It
	// is a third of the lease: the worker renews the lease before each
	// check once a third of it has run, so a check (its budget wait, then
	// its call) ends while the lease it started under still runs.
	recheckCallTimeout = RecheckLeaseTTL / 3
)

// Outcomes a recheck answers besides policy's valid, invalid and unknown.
const (
	// RecheckDeferred: the source's recheck budget (or an open breaker, a
	// Retry-After) had no call to spare; the licence is due again when it
	// has, with nothing else changed.
	RecheckDeferred = "deferred"
	// RecheckOff: the product's mode is off; the licence leaves the due
	// index.
	RecheckOff = "off"
)

// RecheckOutcome is what one recheck did.
type RecheckOutcome struct {
	LicenseID string `json:"license_id"`
	Source    string `json:"source"`
	// Outcome is valid, invalid, unknown, deferred or off.
	Outcome string `json:"outcome"`
	// Reason is the invalid answer's reason (refunded, not_found, ...) or
	// what made it unknown (timeout, rate_limited, author_credential, ...).
	Reason string `json:"reason,omitempty"`
	// Event is the state change it made (license.flagged, ...), if any.
	Event string `json:"event,omitempty"`
	// Held says a suspension the confirm rules allowed was withheld by the
	// mass-suspension guard: the licence is flagged instead.
	Held        bool       `json:"held,omitempty"`
	Status      string     `json:"status"`
	NextCheckAt *time.Time `json:"next_check_at"`
	// Definitive counts consecutive definitive-invalid answers.
	Definitive int `json:"definitive"`
}

// rechecker is the worker's state on one instance: the lease it holds and
// each source's mass-suspension guard.
type rechecker struct {
	svc *Service

	mu     sync.Mutex
	lease  store.Lease // Token 0: not held
	last   int64       // the token of the last lease held
	guards map[string]*sourceGuard
	// askFailures counts failed checks of queued licences (serveAsks).
	askFailures map[string]int
	// wakeAt is when the sleeping worker wakes, unix ns (0: not
	// sleeping); a hint of an earlier check sends on wake. hinted keeps
	// the earliest hint given while the worker was awake, for its next
	// sleep. Atomics: every activation hints, and must not queue on mu.
	wakeAt atomic.Int64
	hinted atomic.Int64
	wake   chan struct{}
}

func newRechecker(s *Service) *rechecker {
	return &rechecker{svc: s, guards: map[string]*sourceGuard{}, wake: make(chan struct{}, 1)}
}

// RecheckLicense rechecks one licence now, as the author asked (admin
// API): it does not wait for the lease, nor for the source's recheck
// budget beyond what the source's own wrapper waits, and writes under no
// lease token (an author's write, never fenced off).
func (s *Service) RecheckLicense(ctx context.Context, id string) (*RecheckOutcome, error) {
	out, err := s.recheckLicense(ctx, id, 0, askedByAuthor)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return out, nil
}

// RecheckLicenseBy is RecheckLicense asked by actor (ConsoleActor), who is
// audited (license.recheck_requested, with the reason) before the check:
// the source's answer is the recheck's own event, the gateway's.
func (s *Service) RecheckLicenseBy(ctx context.Context, actor, id, reason string) (*RecheckOutcome, error) {
	var missing bool
	_, err := s.cfg.Store.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
		if missing = st.License == nil; missing {
			return nil, nil
		}
		s.event(ctx, st, Event{Actor: actor, Action: store.AuditRecheckRequested, LicenseID: id, Reason: trimReason(reason)})
		return st, nil
	})
	switch {
	case err != nil:
		return nil, storeUnavailable(err)
	case missing:
		return nil, ErrNotFound
	}
	return s.RecheckLicense(ctx, id)
}

// asker is who asked for a recheck. They differ in whether the product's
// mode and the source's recheck budget hold them back, and in what a
// check that cannot be made now does.
type asker int

const (
	// askedBySchedule: the worker, for a due licence. It waits briefly for
	// the source's budget, and a check it cannot make now is rescheduled.
	askedBySchedule asker = iota
	// askedByAuthor: the admin API or the console. It asks now, whatever
	// the product's mode, beyond no more than the source's own wrapper.
	askedByAuthor
	// askedByBuyer: status/refresh (AskRecheck). It keeps to the mode and
	// the budget like the schedule (without waiting for the budget), but
	// a check it cannot make now is answered deferred (or off) with
	// nothing written, and it takes nothing out of service (flagInstead).
	askedByBuyer
	// askedByStore: the worker, for a licence a store's webhook named
	// (hooks.go). As the schedule, but its answer does not count in the
	// source's guard: stores send webhooks mostly about refunds, and a
	// burst of real refunds is no sign of a source gone wrong. A tripped
	// guard holds its suspensions all the same.
	askedByStore
)

// recheckLicense checks one licence under token (0: no lease, a check
// asked for by an author or a buyer).
func (s *Service) recheckLicense(ctx context.Context, id string, token int64, by asker) (*RecheckOutcome, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return nil, err
	}
	lic := st.License
	if lic == nil {
		return nil, ErrNotFound
	}
	rules := s.recheckRules(lic.Product)
	if s.product(lic.Product) == nil && by != askedByAuthor {
		// The product is no longer served here: ask again later, in case a
		// reload brings it back; nothing else changes.
		return s.notNow(ctx, st, token, by, RecheckDeferred, "product_not_served", s.now().Add(rules.Every))
	}
	if rules.Mode == policy.RecheckOff && by != askedByAuthor {
		return s.notNow(ctx, st, token, by, RecheckOff, "", time.Time{})
	}
	src := s.cfg.Sources[lic.Source]
	if by != askedByAuthor {
		wait := s.budgetWait(ctx, src, by)
		if ctx.Err() != nil {
			return nil, ctx.Err() // the worker is stopping: the claim runs out
		}
		if wait > 0 {
			return s.notNow(ctx, st, token, by, RecheckDeferred, "budget", s.deferUntil(wait))
		}
	}
	v := s.askSource(ctx, src, st)
	s.noteVerdict(ctx, lic.Source, v) // src is nil when the source left the config
	if ctx.Err() != nil {
		return nil, ctx.Err() // the worker is stopping: the claim runs out
	}
	if v.Outcome == upstreams.Unknown && errors.Is(v.Cause, upstreams.ErrRateBudget) && by != askedByAuthor {
		return s.notNow(ctx, st, token, by, RecheckDeferred, "budget", s.deferUntil(v.RetryAfter))
	}
	now := s.now()
	res := checkResult(v, now)
	var held bool
	var alert *guardAlert
	if by != askedByBuyer {
		// A buyer's ask may be served by any instance, whose guard sees
		// only the checks it made itself: it leaves the guard to the
		// schedule's, and takes nothing out of service (applyCheck).
		held, alert = s.recheck.observe(lic.Source, res, now, by != askedByStore)
	}
	var out *RecheckOutcome
	_, err = s.cfg.Store.UpdateLicense(ctx, id, store.Fenced(token, func(cur *store.LicenseState) (*store.LicenseState, error) {
		if cur.License == nil {
			return nil, nil
		}
		out = applyCheck(cur, rules, res, v, held, alert, by == askedByBuyer, now)
		if res.Outcome == policy.CheckValid {
			s.noteEmail(cur.License, v.Record.Email)
		}
		return cur, nil
	}))
	s.recheck.announced(lic.Source, alert != nil, err == nil)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, ErrNotFound
	}
	s.logOutcome(out, alert)
	return out, nil
}

// budgetWait is how long until the source's recheck budget has a call for
// a check asked for by by: the schedule waits up to recheckPace for one;
// a buyer does not wait (a button is no place for it), and is never
// served before the schedule's pace.
func (s *Service) budgetWait(ctx context.Context, src upstreams.Source, by asker) time.Duration {
	if by == askedByBuyer {
		return recheckWait(src)
	}
	return awaitRecheck(ctx, src)
}

// notNow answers a check that is not made now: the schedule's licence is
// due again at next; a buyer's ask leaves the schedule as it is.
func (s *Service) notNow(ctx context.Context, st *store.LicenseState, token int64, by asker, outcome, reason string, next time.Time) (*RecheckOutcome, error) {
	if by == askedByBuyer {
		return recheckOutcomeOf(st.License, outcome, reason), nil
	}
	return s.reschedule(ctx, st.License.ID, token, outcome, reason, next)
}

// reschedule moves a licence's next check without checking it.
func (s *Service) reschedule(ctx context.Context, id string, token int64, outcome, reason string, next time.Time) (*RecheckOutcome, error) {
	var out *RecheckOutcome
	_, err := s.cfg.Store.UpdateLicense(ctx, id, store.Fenced(token, func(cur *store.LicenseState) (*store.LicenseState, error) {
		if cur.License == nil {
			return nil, nil
		}
		cur.License.NextCheckAt = next
		out = recheckOutcomeOf(cur.License, outcome, reason)
		return cur, nil
	}))
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, ErrNotFound
	}
	return out, nil
}

func recheckOutcomeOf(lic *store.License, outcome, reason string) *RecheckOutcome {
	return &RecheckOutcome{
		LicenseID: lic.ID, Source: lic.Source, Outcome: outcome, Reason: reason, Status: lic.Status,
		NextCheckAt: timePtr(lic.NextCheckAt), Definitive: lic.Recheck.Definitive,
	}
}

// applyCheck applies one answer to a licence state (inside the store's
// atomic update) and returns the outcome. The transition is decided on
// the state as stored now, so an author's change made while the source
// was asked is kept. With flagOnly (a buyer's ask) it takes nothing out
// of service: see flagInstead.
func applyCheck(cur *store.LicenseState, rules policy.RecheckRules, res policy.CheckResult, v upstreams.Verdict, held bool, alert *guardAlert, flagOnly bool, now time.Time) *RecheckOutcome {
	lic := cur.License
	rs := policy.RecheckState{
		Status: lic.Status, StatusBy: lic.StatusBy, ExpiresAt: lic.ExpiresAt, NextCheckAt: lic.NextCheckAt,
		Definitive: lic.Recheck.Definitive, FirstDefinitiveAt: lic.Recheck.FirstDefinitiveAt, Unknown: lic.Recheck.Unknown,
	}
	if res.Outcome == policy.CheckValid && lic.StatusBy == statusBySource {
		rs.StatusBy = policy.SetByRecheck // the source itself lifts what it set
	}
	tr := rules.Next(rs, res, held, rand.Float64())
	if flagOnly {
		flagInstead(&tr, rs, now)
	}
	n := tr.Next
	lic.Status, lic.StatusBy, lic.ExpiresAt, lic.NextCheckAt = n.Status, n.StatusBy, n.ExpiresAt, n.NextCheckAt
	lic.Recheck = store.RecheckState{
		LastCheckAt: now, LastOutcome: res.Outcome, LastReason: res.Reason,
		Definitive: n.Definitive, FirstDefinitiveAt: n.FirstDefinitiveAt, Unknown: n.Unknown,
	}
	lic.UpdatedAt = now
	event, detail := tr.Event, ""
	if res.Outcome == policy.CheckValid {
		// The rules took the answer's expiry above (to tell a renewal);
		// the merge copies the same one with the rest of the record.
		supportRenewed := mergeRecord(lic, v.Record, recheckRecord, now)
		if event == "" && supportRenewed {
			event, detail = policy.EventRenewed, "support_until "+lic.SupportUntil.UTC().Format(time.RFC3339)
		} else if event == policy.EventRenewed && lic.ExpiresAt != nil {
			detail = "expires_at " + lic.ExpiresAt.UTC().Format(time.RFC3339)
		}
	}
	if tr.Held {
		detail = "automatic suspension held by the mass-suspension guard"
	}
	lic.NextCheckAt = dueWithDates(lic.NextCheckAt, lic, now)
	cur.Events = nil
	if event != "" {
		recordEvent(cur, Event{At: now, Actor: ActorGateway, Action: event, LicenseID: lic.ID,
			Reason: res.Reason, Detail: detail})
	}
	if alert != nil {
		// Written with the check that tripped the guard (and so under its
		// licence's queue), atomically with the state it held.
		recordEvent(cur, Event{At: now, Actor: ActorGateway, Action: store.AuditRecheckGuardTripped,
			Source: alert.source, Detail: alert.source, Reason: fmt.Sprintf("%d of %d answers definitive invalid; automatic suspension paused", alert.invalid, alert.checks)})
	}
	out := recheckOutcomeOf(lic, res.Outcome, res.Reason)
	out.Event, out.Held = event, tr.Held
	return out
}

// flagInstead turns a transition that would take a licence out of service
// into a flag, due for the schedule at once: a buyer's ask (served by
// whichever instance the request reached, whose mass-suspension guard has
// seen next to nothing) may show a refund, but only the schedule, under
// its guard and confirm rules, suspends or expires.
func flagInstead(tr *policy.Transition, before policy.RecheckState, now time.Time) {
	n := &tr.Next
	inService := func(status string) bool { return status == policy.StatusActive || status == policy.StatusFlagged }
	if inService(n.Status) || !inService(before.Status) {
		return
	}
	n.Status, n.StatusBy, n.ExpiresAt = policy.StatusFlagged, policy.SetByRecheck, before.ExpiresAt
	n.NextCheckAt = now
	tr.Event = ""
	if before.Status == policy.StatusActive {
		tr.Event = policy.EventFlagged
	}
}

// logOutcome logs what a recheck changed (never the code).
func (s *Service) logOutcome(out *RecheckOutcome, alert *guardAlert) {
	s.obs.RecheckOutcome(out.Source, out.Outcome)
	if alert != nil {
		s.log.Warn("mass-suspension guard tripped: automatic suspension paused for the source",
			zap.String("source", alert.source), zap.Int("definitive_invalid", alert.invalid), zap.Int("checks", alert.checks))
	}
	if out.Event == "" {
		return
	}
	s.log.Info("recheck changed a licence", zap.String("license_id", out.LicenseID), zap.String("source", out.Source),
		zap.String("event", out.Event), zap.String("reason", out.Reason), zap.Bool("held", out.Held))
}

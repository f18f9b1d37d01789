package gateway

// The background recheck (SPEC section 7): one worker across the
// instances sharing a store, by a lease with a fencing token, asks each
// licence's source again when the licence is due, and applies
// policy.RecheckRules.Next to the answer.
//
//	RunRecheck           the worker: RecheckOnce in a loop, sleeping when
//	                     nothing is due or another instance holds the lease
//	RecheckOnce          one step: take or renew the lease, claim a batch of
//	                     due licences (store.ClaimDue), check each
//	recheckLicense       one licence: pace by the source's recheck budget,
//	                     unseal the code, ask the source's side-effect-free
//	                     Recheck, apply the rules with the source's guard,
//	                     write licence and audit in one fenced update
//	RecheckLicense       the admin's "recheck now": the same, under no lease
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
	"sort"
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
	// wakeAt is when the sleeping worker wakes, unix ns (0: not
	// sleeping); a hint of an earlier check sends on wake. hinted keeps
	// the earliest hint given while the worker was awake, for its next
	// sleep. Atomics: every activation hints, and must not queue on mu.
	wakeAt atomic.Int64
	hinted atomic.Int64
	wake   chan struct{}
}

// sourceGuard is one source's guard and whether its trip was announced.
type sourceGuard struct {
	guard            policy.Guard
	alerted, pending bool
}

func newRechecker(s *Service) *rechecker {
	return &rechecker{svc: s, guards: map[string]*sourceGuard{}, wake: make(chan struct{}, 1)}
}

// RunRecheck is the recheck worker: it runs RecheckOnce until ctx ends,
// at once again while a whole batch was due, else when the next licence
// falls due (the due index's first entry; at most recheckIdle on, and
// sooner when this instance schedules an earlier check: see hint), and
// releases the lease on the way out so another instance takes over at
// once. It returns nil when ctx ends.
func (s *Service) RunRecheck(ctx context.Context) error {
	defer s.recheck.release()
	for {
		n, err := s.RecheckOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("recheck step failed; retrying", zap.Error(err))
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			wait = recheckStandby
		case !s.recheck.holding():
			wait = recheckStandby
		case n < RecheckBatch:
			wait = s.untilNextDue(ctx)
		}
		if wait > 0 && !s.recheck.sleep(ctx, wait, s.now()) {
			return nil
		}
	}
}

// recheckMinWait is the least the worker sleeps when fewer than a batch
// were due: a licence due again at once (a claim that found nothing to
// check) does not spin the loop.
const recheckMinWait = 50 * time.Millisecond

// untilNextDue is how long the worker may sleep: until the due index's
// earliest entry, within [recheckMinWait, the idle cap]. The cap bounds
// how late a licence scheduled by another instance is seen: recheckIdle,
// or the shortest product interval when that is shorter (an author
// watching a `recheck every 1s` in staging).
func (s *Service) untilNextDue(ctx context.Context) time.Duration {
	limit := recheckIdle
	for _, p := range s.cfg.Products {
		if r := p.Recheck.WithDefaults(); r.Mode != policy.RecheckOff && r.Every < limit {
			limit = max(r.Every, time.Second)
		}
	}
	next, err := s.cfg.Store.NextDue(ctx)
	if err != nil || next.IsZero() {
		return limit
	}
	return min(max(next.Sub(s.now()), recheckMinWait), limit)
}

// sleep waits d, or less when ctx ends (false then) or when hint names an
// earlier check meanwhile.
func (w *rechecker) sleep(ctx context.Context, d time.Duration, now time.Time) bool {
	w.wakeAt.Store(now.Add(d).UnixNano()) // hints from here on wake the sleep
	defer w.wakeAt.Store(0)
	if h := w.hinted.Swap(0); h != 0 {
		// A check scheduled while this step ran (after its due-index read).
		d = min(d, max(time.Duration(h-now.UnixNano()), 0))
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// hint tells a sleeping worker that a licence is due at at: it wakes now
// when that is before its planned wake. Cheap and never blocking, so any
// write that schedules a check may call it.
func (w *rechecker) hint(at time.Time) {
	if at.IsZero() {
		return
	}
	ns := at.UnixNano()
	wake := w.wakeAt.Load()
	if wake == 0 {
		// Awake: keep the earliest hint for the next sleep.
		for h := w.hinted.Load(); h == 0 || ns < h; h = w.hinted.Load() {
			if w.hinted.CompareAndSwap(h, ns) {
				break
			}
		}
		if w.wakeAt.Load() == 0 {
			return
		}
		// The worker fell asleep meanwhile (and may have taken the hint
		// already): wake it if the check is earlier, as below.
		wake = w.wakeAt.Load()
	}
	if ns < wake {
		select {
		case w.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// rechecks reports whether any product is rechecked in the background.
func (s *Service) rechecks() bool {
	for _, p := range s.cfg.Products {
		if p.Recheck.WithDefaults().Mode != policy.RecheckOff {
			return true
		}
	}
	return false
}

// RecheckOnce is one step of the worker, on the service's clock: take or
// renew the lease (returning 0 when another instance holds it), claim up
// to RecheckBatch due licences and check each, renewing the lease between
// checks. It returns how many licences it checked. A step that loses the
// lease midway stops; the licences it claimed are due again once their
// claim has run out.
func (s *Service) RecheckOnce(ctx context.Context) (int, error) {
	w := s.recheck
	token, err := w.hold(ctx)
	if err != nil || token == 0 {
		return 0, err
	}
	ids, err := s.cfg.Store.ClaimDue(ctx, s.now(), RecheckBatch, RecheckClaim)
	if err != nil {
		return 0, fmt.Errorf("claiming due licences: %w", err)
	}
	n := 0
	for _, id := range ids {
		if token, err = w.hold(ctx); err != nil || token == 0 {
			return n, err
		}
		_, err := s.recheckLicense(ctx, id, token, false)
		switch {
		case errors.Is(err, store.ErrFenced):
			// A later holder wrote this licence: this instance's lease is
			// gone, whatever it believed.
			s.log.Info("recheck: a later lease holder took over", zap.String("license_id", id))
			w.drop(token)
			return n, nil
		case errors.Is(err, ErrNotFound):
			continue // an index entry without its licence
		case err != nil:
			return n, err
		}
		n++
	}
	return n, nil
}

// holding reports whether this instance holds the lease, as far as it
// knows.
func (w *rechecker) holding() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lease.Token != 0
}

// hold returns the token of the held lease, renewing it once a third of
// its TTL has passed, or acquiring it when not held; 0 when another
// instance holds it. A holding that follows another instance's starts
// fresh guards: what that holder observed is not known here.
func (w *rechecker) hold(ctx context.Context) (int64, error) {
	st, now := w.svc.cfg.Store, w.svc.now()
	w.mu.Lock()
	l := w.lease
	w.mu.Unlock()
	if l.Token != 0 {
		if now.Before(l.Expires.Add(-2 * RecheckLeaseTTL / 3)) {
			return l.Token, nil
		}
		renewed, err := st.RenewLease(ctx, l, now, RecheckLeaseTTL)
		switch {
		case err == nil:
			w.mu.Lock()
			if w.lease.Token == l.Token {
				w.lease = renewed
			}
			w.mu.Unlock()
			return l.Token, nil
		case !errors.Is(err, store.ErrLeaseLost) && now.Add(recheckPace+recheckCallTimeout).Before(l.Expires):
			// The store did not answer, but the lease outlasts a whole
			// check (its budget wait and its call): go on.
			return l.Token, nil
		case !errors.Is(err, store.ErrLeaseLost):
			w.drop(l.Token)
			return 0, fmt.Errorf("renewing the recheck lease: %w", err)
		}
		w.drop(l.Token)
		w.svc.log.Warn("recheck lease lost; trying to take it again")
	}
	got, err := st.AcquireLease(ctx, RecheckLease, w.svc.cfg.InstanceID, now, RecheckLeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("acquiring the recheck lease: %w", err)
	}
	w.mu.Lock()
	if got.Token != w.last && got.Token != w.last+1 {
		// Another instance held the lease since this one did (tokens go up
		// by one per holding): what it observed is not in these guards.
		w.guards = map[string]*sourceGuard{}
		w.svc.log.Info("recheck lease taken", zap.String("instance", w.svc.cfg.InstanceID), zap.Int64("token", got.Token))
	}
	w.lease, w.last = got, got.Token
	w.mu.Unlock()
	return got.Token, nil
}

// drop forgets the lease of token.
func (w *rechecker) drop(token int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lease.Token == token {
		w.lease = store.Lease{}
	}
}

// release gives the lease up (the worker stops), so another instance
// need not wait for it to expire.
func (w *rechecker) release() {
	w.mu.Lock()
	l := w.lease
	w.lease = store.Lease{}
	w.mu.Unlock()
	if l.Token == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.svc.cfg.Store.ReleaseLease(ctx, l); err != nil {
		w.svc.log.Warn("releasing the recheck lease", zap.Error(err))
	}
}

// RecheckLicense rechecks one licence now, as the author asked (admin
// API): it does not wait for the lease, nor for the source's recheck
// budget beyond what the source's own wrapper waits, and writes under no
// lease token (an author's write, never fenced off).
func (s *Service) RecheckLicense(ctx context.Context, id string) (*RecheckOutcome, error) {
	out, err := s.recheckLicense(ctx, id, 0, true)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return out, nil
}

// recheckLicense checks one licence under token (0: an author's recheck,
// by hand).
func (s *Service) recheckLicense(ctx context.Context, id string, token int64, byHand bool) (*RecheckOutcome, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return nil, err
	}
	lic := st.License
	if lic == nil {
		return nil, ErrNotFound
	}
	rules := s.recheckRules(lic.Product)
	if s.product(lic.Product) == nil && !byHand {
		// The product is no longer served here: ask again later, in case a
		// reload brings it back; nothing else changes.
		return s.reschedule(ctx, id, token, RecheckDeferred, "product_not_served", s.now().Add(rules.Every))
	}
	if rules.Mode == policy.RecheckOff && !byHand {
		return s.reschedule(ctx, id, token, RecheckOff, "", time.Time{})
	}
	src := s.cfg.Sources[lic.Source]
	if !byHand {
		wait := awaitRecheck(ctx, src)
		if ctx.Err() != nil {
			return nil, ctx.Err() // the worker is stopping: the claim runs out
		}
		if wait > 0 {
			return s.reschedule(ctx, id, token, RecheckDeferred, "budget", s.deferUntil(wait))
		}
	}
	v := s.askSource(ctx, src, st)
	s.noteVerdict(ctx, lic.Source, v) // src is nil when the source left the config
	if ctx.Err() != nil {
		return nil, ctx.Err() // the worker is stopping: the claim runs out
	}
	if v.Outcome == upstreams.Unknown && errors.Is(v.Cause, upstreams.ErrRateBudget) && !byHand {
		return s.reschedule(ctx, id, token, RecheckDeferred, "budget", s.deferUntil(v.RetryAfter))
	}
	now := s.now()
	res := checkResult(v, now)
	held, alert := s.recheck.observe(lic.Source, res, now)
	var out *RecheckOutcome
	_, err = s.cfg.Store.UpdateLicense(ctx, id, store.Fenced(token, func(cur *store.LicenseState) (*store.LicenseState, error) {
		if cur.License == nil {
			return nil, nil
		}
		out = applyCheck(cur, rules, res, v, held, alert, now)
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

// awaitRecheck waits up to recheckPace for src's recheck budget to have a
// call and returns 0, or returns the longer wait (see recheckWait) at
// once. Waiting the few milliseconds a call takes to refill keeps a batch
// of one source's licences flowing at the recheck share of its rate;
// deferring each would write it back for nothing and leave the batch to
// the bucket's handful of calls.
func awaitRecheck(ctx context.Context, src upstreams.Source) time.Duration {
	if p, ok := src.(interface{ Budget() *upstreams.Budget }); ok && p.Budget() != nil {
		return p.Budget().AwaitRecheck(ctx, recheckPace)
	}
	return recheckWait(src)
}

// recheckWait is how long until src's recheck budget has a call (0: now):
// the rate budget's recheck share and a Retry-After pause. An open breaker
// is not waited for: the recheck asks, is answered unknown at once, and
// backs off like any unknown answer, rather than coming back every
// cooldown.
func recheckWait(src upstreams.Source) time.Duration {
	if p, ok := src.(interface{ Budget() *upstreams.Budget }); ok && p.Budget() != nil {
		return p.Budget().RecheckWait()
	}
	if p, ok := src.(interface{ RecheckWait() time.Duration }); ok {
		return p.RecheckWait()
	}
	return 0
}

// deferUntil is when a licence deferred for wait is due again: after the
// wait, spread by up to a tenth more (at least a second), so deferred
// licences do not all come back in the same instant.
func (s *Service) deferUntil(wait time.Duration) time.Time {
	wait = max(wait, time.Second)
	return s.now().Add(wait + time.Duration(rand.Float64()*float64(wait/10+time.Second)))
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

// askSource unseals the licence's code and asks its source's
// side-effect-free recheck with what the licence recorded (the domain and
// IP of its installation, the vendor's id).
func (s *Service) askSource(ctx context.Context, src upstreams.Source, st *store.LicenseState) upstreams.Verdict {
	lic := st.License
	if src == nil {
		return upstreams.UnknownVerdict(errSourceGone)
	}
	rc, ok := src.(upstreams.Rechecker)
	if !ok {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", src.Name(), upstreams.ErrRecheckUnsupported))
	}
	if len(lic.KeyCiphertext) == 0 {
		return upstreams.UnknownVerdict(errNoSealedKey)
	}
	key, err := s.cfg.Master.Open(lic.KeyCiphertext, []byte(lic.ID))
	if err != nil {
		return upstreams.UnknownVerdict(errNoSealedKey)
	}
	domain, ip := recordedInstallation(st)
	cctx, cancel := context.WithTimeout(ctx, recheckCallTimeout)
	defer cancel()
	return rc.Recheck(cctx, upstreams.RecheckRequest{
		Key: string(key), Product: lic.Product, Domain: domain, IP: ip, VendorID: lic.VendorID,
	})
}

var (
	errSourceGone  = errors.New("the licence's source is no longer configured")
	errNoSealedKey = errors.New("the licence's sealed code cannot be opened (another master secret?)")
)

// recordedInstallation is the domain and IP a recheck names: the oldest
// active production installation's, else the oldest active one's, else
// the oldest one's; none for a licence without installations.
func recordedInstallation(st *store.LicenseState) (domain, ip string) {
	pick := func(ok func(*store.Installation) bool) *store.Installation {
		for i := range st.Installations {
			if ok(&st.Installations[i]) {
				return &st.Installations[i]
			}
		}
		return nil
	}
	in := pick(func(in *store.Installation) bool {
		return in.Active() && in.InstallClass == string(policy.ClassProduction)
	})
	if in == nil {
		in = pick((*store.Installation).Active)
	}
	if in == nil {
		in = pick(func(*store.Installation) bool { return true })
	}
	if in == nil {
		return "", ""
	}
	return in.Domain, in.IP
}

// checkResult is a verdict in policy's terms.
func checkResult(v upstreams.Verdict, at time.Time) policy.CheckResult {
	switch v.Outcome {
	case upstreams.Valid:
		if e := v.Record.ExpiresAt; e != nil && !e.After(at) {
			// The source's own record says the licence's term is over (the
			// author's key file, with a passed expires_at).
			return policy.CheckResult{Outcome: policy.CheckInvalid, Reason: policy.ReasonExpired, ExpiresAt: e, At: at}
		}
		return policy.CheckResult{Outcome: policy.CheckValid, ExpiresAt: v.Record.ExpiresAt, At: at}
	case upstreams.Invalid:
		return policy.CheckResult{Outcome: policy.CheckInvalid, Reason: string(v.Reason), At: at}
	}
	return policy.CheckResult{Outcome: policy.CheckUnknown, Reason: unknownReason(v.Cause), At: at}
}

// unknownReason names what made an answer unknown, for the licence view
// and the logs: a class, never the cause's text (which may quote a URL).
func unknownReason(err error) string {
	var (
		author *upstreams.AuthorCredentialError
		limit  *upstreams.RateLimitError
		status *upstreams.StatusError
	)
	switch {
	case err == nil:
		return "unknown"
	case errors.As(err, &author):
		return "author_credential"
	case errors.As(err, &limit):
		return "rate_limited"
	case errors.Is(err, upstreams.ErrRateBudget):
		return "budget"
	case errors.Is(err, upstreams.ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, upstreams.ErrRecheckUnsupported):
		return "unsupported"
	case errors.Is(err, errSourceGone):
		return "source_not_configured"
	case errors.Is(err, errNoSealedKey):
		return "sealed_code_unreadable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &status):
		return fmt.Sprintf("http_%d", status.Status)
	}
	return "unreadable_answer"
}

// definitiveInvalid reports whether res counts as the guard's
// definitive-invalid answer.
func definitiveInvalid(res policy.CheckResult) bool {
	return res.Outcome == policy.CheckInvalid && policy.Definitive(res.Reason)
}

// guardAlert is a trip of a source's guard to announce.
type guardAlert struct {
	source          string
	checks, invalid int
}

// observe counts an answered check in its source's guard and says whether
// automatic suspension is held for the source: the guard tripped. A trip
// not announced yet comes back as an alert, to be written with this check.
// A guard that has watched for less than a day (this instance just took
// the lease) holds nothing on that account: the options say when a
// licence is flagged or suspended, and the guard's hourly window sees a
// mass event within its first minimum of answers.
func (w *rechecker) observe(source string, res policy.CheckResult, now time.Time) (bool, *guardAlert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.guards[source]
	if g == nil {
		g = &sourceGuard{}
		w.guards[source] = g
	}
	g.guard.Begin(now)
	if res.Outcome != policy.CheckUnknown && !(res.Outcome == policy.CheckInvalid && !policy.Definitive(res.Reason)) {
		g.guard.Observe(now, definitiveInvalid(res))
	}
	tripped := g.guard.Tripped(now) || (g.alerted || g.pending) && !g.guard.Clear(now)
	if !tripped {
		g.alerted = false
		return false, nil
	}
	var alert *guardAlert
	if !g.alerted && !g.pending {
		g.pending = true
		checks, invalid := g.guard.Counts(now)
		if invalid < policy.DefaultGuardMin {
			checks, invalid = g.guard.DayCounts(now) // the day window tripped it
		}
		alert = &guardAlert{source: source, checks: checks, invalid: invalid}
	}
	return true, alert
}

// announced settles a pending alert: written with the check, or not.
func (w *rechecker) announced(source string, hadAlert, written bool) {
	if !hadAlert {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.guards[source]; g != nil {
		g.pending = false
		g.alerted = g.alerted || written
	}
}

// applyCheck applies one answer to a licence state (inside the store's
// atomic update) and returns the outcome. The transition is decided on
// the state as stored now, so an author's change made while the source
// was asked is kept.
func applyCheck(cur *store.LicenseState, rules policy.RecheckRules, res policy.CheckResult, v upstreams.Verdict, held bool, alert *guardAlert, now time.Time) *RecheckOutcome {
	lic := cur.License
	rs := policy.RecheckState{
		Status: lic.Status, StatusBy: lic.StatusBy, ExpiresAt: lic.ExpiresAt, NextCheckAt: lic.NextCheckAt,
		Definitive: lic.Recheck.Definitive, FirstDefinitiveAt: lic.Recheck.FirstDefinitiveAt, Unknown: lic.Recheck.Unknown,
	}
	if res.Outcome == policy.CheckValid && lic.StatusBy == statusBySource {
		rs.StatusBy = policy.SetByRecheck // the source itself lifts what it set
	}
	tr := rules.Next(rs, res, held, rand.Float64())
	n := tr.Next
	lic.Status, lic.StatusBy, lic.ExpiresAt, lic.NextCheckAt = n.Status, n.StatusBy, n.ExpiresAt, n.NextCheckAt
	lic.Recheck = store.RecheckState{
		LastCheckAt: now, LastOutcome: res.Outcome, LastReason: res.Reason,
		Definitive: n.Definitive, FirstDefinitiveAt: n.FirstDefinitiveAt, Unknown: n.Unknown,
	}
	lic.UpdatedAt = now
	event, detail := tr.Event, ""
	if res.Outcome == policy.CheckValid {
		r := v.Record
		supportRenewed := lic.SupportUntil != nil && r.SupportUntil != nil && r.SupportUntil.After(*lic.SupportUntil)
		lic.SupportUntil, lic.Retired, lic.ActivationsLimit = r.SupportUntil, r.Retired, r.ActivationsLimit
		if r.Type != "" {
			lic.Type = r.Type
		}
		if r.LicensedTo != "" {
			lic.LicensedTo = r.LicensedTo
		}
		if r.VendorID != "" {
			lic.VendorID = r.VendorID
		}
		lic.VerifiedAt = now
		if event == "" && supportRenewed {
			event, detail = policy.EventRenewed, "support_until "+r.SupportUntil.UTC().Format(time.RFC3339)
		} else if event == policy.EventRenewed && lic.ExpiresAt != nil {
			detail = "expires_at " + lic.ExpiresAt.UTC().Format(time.RFC3339)
		}
	}
	if tr.Held {
		detail = "automatic suspension held by the mass-suspension guard"
	}
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

// RecheckStats is the recheck's part of GET stats.
type RecheckStats struct {
	// Scheduled counts licences with a next check; DueNow those due.
	Scheduled int64 `json:"scheduled"`
	DueNow    int64 `json:"due_now"`
	// Backlog is DueNow (licences waiting for a check); LagSeconds how
	// long the oldest due licence has waited.
	Backlog    int64 `json:"backlog"`
	LagSeconds int64 `json:"lag_seconds"`
	// LeaseHeld says this instance holds the recheck lease (the guards
	// below are the lease holder's: ask it).
	LeaseHeld bool                   `json:"lease_held"`
	Guards    map[string]GuardStatus `json:"guards"`
}

// GuardStatus is one source's mass-suspension guard.
type GuardStatus struct {
	Checks     int  `json:"checks_last_hour"`
	Invalid    int  `json:"definitive_invalid_last_hour"`
	DayChecks  int  `json:"checks_last_day"`
	DayInvalid int  `json:"definitive_invalid_last_day"`
	Tripped    bool `json:"tripped"`
	// Warm is false while the guard has watched for less than a day on
	// this instance (its day window has not seen a whole day yet).
	Warm bool `json:"warm"`
}

// RecheckStatus reads the due index and this instance's guards.
func (s *Service) RecheckStatus(ctx context.Context) (*RecheckStats, error) {
	now := s.now()
	ds, err := s.cfg.Store.DueStats(ctx, now)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	out := &RecheckStats{Scheduled: ds.Scheduled, DueNow: ds.Due, Backlog: ds.Due, Guards: map[string]GuardStatus{}}
	if ds.Due > 0 && !ds.Oldest.IsZero() && ds.Oldest.Before(now) {
		out.LagSeconds = int64(now.Sub(ds.Oldest) / time.Second)
	}
	w := s.recheck
	w.mu.Lock()
	defer w.mu.Unlock()
	out.LeaseHeld = w.lease.Token != 0
	names := make([]string, 0, len(s.cfg.Sources))
	for name := range s.cfg.Sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var gs GuardStatus
		if g := w.guards[name]; g != nil {
			gs.Checks, gs.Invalid = g.guard.Counts(now)
			gs.DayChecks, gs.DayInvalid = g.guard.DayCounts(now)
			gs.Tripped, gs.Warm = g.guard.Tripped(now) || g.alerted && !g.guard.Clear(now), g.guard.Warm(now)
		}
		out.Guards[name] = gs
	}
	return out, nil
}

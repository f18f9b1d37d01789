package upstreams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// ResilienceConfig tunes Resilient. Zero values get the defaults noted.
type ResilienceConfig struct {
	// Timeout bounds one upstream call (default 10s).
	Timeout time.Duration
	// Rate is the source's call budget (default 60/m), shared by every
	// caller of this wrapper.
	Rate Rate
	// Burst is how many calls may go at once from a full bucket
	// (default: Rate.Calls up to 10).
	Burst int
	// Concurrency bounds calls in flight (default 4).
	Concurrency int
	// MaxWait is how long a caller may wait for the rate budget before it
	// is answered Unknown with a RetryAfter instead (default 5s).
	MaxWait time.Duration
	// Retries is how many times an Unknown outcome is retried, with
	// jittered exponential backoff from RetryBase (defaults 2, 250ms). A
	// question shared by concurrent callers gets at most
	// (Retries+1)*(Timeout+MaxWait) plus its backoffs, whatever its
	// callers' deadlines; each caller waits no longer than its own.
	Retries   int
	RetryBase time.Duration
	// BreakerThreshold consecutive Unknown outcomes open the circuit for
	// BreakerCooldown (defaults 5, 30s); while open, calls are answered
	// Unknown at once, then one trial call decides.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// NegativeTTL caches definitive Invalid answers (default 5m; 0 keeps
	// the default, a negative value disables the cache).
	NegativeTTL  time.Duration
	NegativeSize int // default 10000
	// Clock defaults to the real one.
	Clock Clock
	// OnUnknown, when set, is told about every Unknown outcome of a real
	// call (for logs and alerts). It must not block.
	OnUnknown func(source string, cause error)
	// Observer is told about calls and budget waits (metrics). Default:
	// nothing is told.
	Observer Observer
}

// DomainAware is implemented by sources whose answer depends on the
// request's domain (AppTrovo, CP store); for the others, concurrent
// questions about one key share one call whatever the domain.
type DomainAware interface {
	UsesDomain() bool
}

// Resilient wraps a Source with a timeout, a rate budget honouring
// Retry-After, a concurrency bound, coalescing of identical concurrent
// questions, retries of Unknown outcomes, a circuit breaker and a short
// negative cache. It is itself a Source.
//
// The budget is spent by the requests themselves: BuildResilient hands the
// source the Client it must send them through. Resilient only waits, before
// a call, until the budget (and a Retry-After pause) would allow one, and
// answers at once when that is further than MaxWait.
type Resilient struct {
	src        Source
	cfg        ResilienceConfig
	usesDomain bool
	flights    singleflight.Group
	rechecks   singleflight.Group // rechecks share calls only with rechecks
	flightMax  time.Duration      // bounds one shared question, retries included
	sem        chan struct{}
	budget     *Budget
	breaker    *breaker
	negative   *negativeCache
	failure    lastFailure // the last failed call's class, for Health

	calls atomic.Uint64 // calls of the wrapped source, for tests and metrics
}

// BuildResilient builds a source with build, handing it the Client it
// must send every request through (each spends one call of the source's
// rate budget), and wraps it.
func BuildResilient(cfg ResilienceConfig, build func(Client) (Source, error)) (*Resilient, error) {
	cfg = withDefaults(cfg)
	budget := newBudget(cfg)
	client, err := NewClient(Client{Now: cfg.Clock.Now, Budget: budget})
	if err != nil {
		return nil, err
	}
	src, err := build(client)
	if err != nil {
		return nil, err
	}
	return newResilient(src, cfg, budget), nil
}

// NewResilient wraps src, which spends no budget of its own: its calls
// wait only for a Retry-After pause. HTTP sources are built with
// BuildResilient.
func NewResilient(src Source, cfg ResilienceConfig) *Resilient {
	cfg = withDefaults(cfg)
	return newResilient(src, cfg, newBudget(cfg))
}

func newBudget(cfg ResilienceConfig) *Budget {
	return NewBudget(cfg.Rate, cfg.Burst, cfg.MaxWait, cfg.Clock)
}

func newResilient(src Source, cfg ResilienceConfig, budget *Budget) *Resilient {
	r := &Resilient{
		src: src, cfg: cfg, flightMax: flightTimeout(cfg), sem: make(chan struct{}, cfg.Concurrency),
		budget:   budget,
		breaker:  &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, clock: cfg.Clock},
		negative: newNegativeCache(cfg.NegativeTTL, cfg.NegativeSize, cfg.Clock),
	}
	if d, ok := src.(DomainAware); ok {
		r.usesDomain = d.UsesDomain()
	}
	return r
}

func withDefaults(c ResilienceConfig) ResilienceConfig {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Rate.Calls <= 0 || c.Rate.Period <= 0 {
		c.Rate = Rate{Calls: 60, Period: time.Minute}
	}
	if c.Burst <= 0 {
		c.Burst = min(c.Rate.Calls, 10)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Second
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 2
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 250 * time.Millisecond
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = 5
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = 30 * time.Second
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Minute
	}
	if c.NegativeSize <= 0 {
		c.NegativeSize = 10000
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// flightTimeout bounds one shared question: every attempt may wait MaxWait
// for the budget and Timeout for the source, every retry its longest
// backoff.
func flightTimeout(c ResilienceConfig) time.Duration {
	d := time.Duration(c.Retries+1) * (c.Timeout + c.MaxWait)
	for attempt := 1; attempt <= c.Retries; attempt++ {
		d += c.RetryBase<<(attempt-1) + time.Millisecond
	}
	return d
}

// Name implements Source.
func (r *Resilient) Name() string { return r.src.Name() }

// CanonicalKey implements Source; it never calls the source.
func (r *Resilient) CanonicalKey(key string) (string, error) { return r.src.CanonicalKey(key) }

// Local implements Local for wrapped local sources.
func (r *Resilient) Local() bool {
	l, ok := r.src.(Local)
	return ok && l.Local()
}

// Calls returns how many times the wrapped source was really called.
func (r *Resilient) Calls() uint64 { return r.calls.Load() }

// Budget returns the source's rate budget.
func (r *Resilient) Budget() *Budget { return r.budget }

// Verify implements Source. A caller whose ctx ends first is answered
// Unknown with ctx's error; the call it shared goes on for the others.
func (r *Resilient) Verify(ctx context.Context, req Request) Verdict {
	id := r.flightKey(req)
	if reason, ok := r.negative.get(id); ok {
		return InvalidVerdict(reason)
	}
	if err := ctx.Err(); err != nil {
		return UnknownVerdict(err)
	}
	ch := r.flights.DoChan(id, func() (any, error) {
		// Callers share this call: one of them going away must not cancel
		// it for the others, so it has a deadline of its own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.flightMax)
		defer cancel()
		return r.verify(fctx, req, id), nil
	})
	select {
	case res := <-ch:
		return res.Val.(Verdict)
	case <-ctx.Done():
		return UnknownVerdict(ctx.Err())
	}
}

// flightKey identifies a question without keeping the key itself.
func (r *Resilient) flightKey(req Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s|%d:%s", len(req.Key), req.Key, len(req.Product), req.Product)
	if r.usesDomain {
		fmt.Fprintf(h, "|%d:%s", len(req.Domain), req.Domain)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r *Resilient) verify(ctx context.Context, req Request, id string) Verdict {
	var last Verdict
	for attempt := 0; attempt <= r.cfg.Retries; attempt++ {
		if attempt > 0 {
			if err := r.cfg.Clock.Sleep(ctx, r.backoff(attempt)); err != nil {
				return last
			}
		}
		v, retry := r.attempt(ctx, req)
		if v.Outcome == Invalid {
			r.negative.put(id, v.Reason)
		}
		if v.Outcome != Unknown || !retry {
			return v
		}
		last = v
	}
	return last
}

// attempt makes at most one call of the source and says whether an
// Unknown outcome is worth retrying.
func (r *Resilient) attempt(ctx context.Context, req Request) (Verdict, bool) {
	return r.attemptCall(ctx, r.budget.Wait, func(ctx context.Context) Verdict { return r.src.Verify(ctx, req) })
}

// attemptCall makes at most one call, ask, once the breaker admits it and
// budgetWait (the activations' or the rechecks' share) says the budget
// would allow it, and says whether an Unknown outcome is worth retrying.
func (r *Resilient) attemptCall(ctx context.Context, budgetWait func() time.Duration, ask func(context.Context) Verdict) (Verdict, bool) {
	if wait, ok := r.breaker.admit(); !ok {
		v := UnknownVerdict(ErrCircuitOpen)
		v.RetryAfter = wait
		return v, false
	}
	if v, ok := r.awaitBudget(ctx, budgetWait); !ok {
		r.breaker.abandon()
		return v, false
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		r.breaker.abandon()
		return UnknownVerdict(ctx.Err()), false
	}
	v, returned := r.call(ctx, ask)
	if be := (*BudgetError)(nil); errors.As(v.Cause, &be) {
		// A request found the budget spent: the source said nothing, and
		// it is asked again only once the budget allows.
		v.RetryAfter = max(v.RetryAfter, be.Wait)
		r.breaker.abandon()
		return v, false
	}
	if errors.Is(v.Cause, ErrRecheckUnsupported) || errors.Is(v.Cause, errBuyerCall) {
		// answered without asking the vendor, or on a buyer's token:
		// nothing to learn from it about the author's API
		r.breaker.abandon()
		return v, false
	}
	retry := r.record(v)
	return v, retry && returned // a panic is a bug: asking again will not fix it
}

// awaitBudget waits until the budget would allow a call (budgetWait), or
// answers the Unknown verdict to give at once when that is further than
// MaxWait. It takes nothing: the call's requests spend the budget through
// the Client.
func (r *Resilient) awaitBudget(ctx context.Context, budgetWait func() time.Duration) (Verdict, bool) {
	wait := budgetWait()
	if wait > r.cfg.MaxWait {
		r.cfg.Observer.BudgetWait(r.src.Name(), 0, true)
		v := UnknownVerdict(ErrRateBudget)
		v.RetryAfter = wait
		return v, false
	}
	if wait > 0 {
		r.cfg.Observer.BudgetWait(r.src.Name(), wait, false)
		if err := r.cfg.Clock.Sleep(ctx, wait); err != nil {
			return UnknownVerdict(err), false
		}
	}
	return Verdict{}, true
}

// call asks the source once with the slot taken by attempt, and gives the
// slot back however the source returns. A panic in the adapter becomes an
// Unknown verdict (returned is then false): a bug in one adapter must not
// take the gateway down, nor decide anything.
func (r *Resilient) call(ctx context.Context, ask func(context.Context) Verdict) (v Verdict, returned bool) {
	defer func() { <-r.sem }()
	name := r.src.Name()
	start := r.cfg.Clock.Now()
	ctx, span := startSpan(ctx, "source "+name, name)
	defer func() {
		r.observeCall(name, v, r.cfg.Clock.Now().Sub(start))
		endSpan(span, v)
	}()
	defer RecoverVerdict(name, &v)
	r.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	return ask(cctx), true
}

// observeCall reports a call: one that found the budget spent never
// reached the vendor, and one answered ErrRecheckUnsupported never asked.
func (r *Resilient) observeCall(name string, v Verdict, took time.Duration) {
	switch be := (*BudgetError)(nil); {
	case errors.As(v.Cause, &be):
		r.cfg.Observer.BudgetWait(name, 0, true)
	case errors.Is(v.Cause, ErrRecheckUnsupported):
	default:
		r.cfg.Observer.Call(name, v.Outcome.String(), took)
	}
}

// record updates the breaker and the budget's pause from a real call's
// outcome, tells OnUnknown, and says whether an Unknown outcome may be
// retried.
func (r *Resilient) record(v Verdict) bool {
	retry := r.recordState(v)
	if v.Outcome == Unknown {
		r.failure.note(v.Cause, r.cfg.Clock.Now())
	}
	if v.Outcome == Unknown && r.cfg.OnUnknown != nil {
		r.cfg.OnUnknown(r.src.Name(), v.Cause)
	}
	return retry
}

func (r *Resilient) recordState(v Verdict) bool {
	if v.Outcome != Unknown {
		r.breaker.succeed()
		return false
	}
	var rl *RateLimitError
	if errors.As(v.Cause, &rl) || v.RetryAfter > 0 {
		// The source answered, asking for quiet: that is no failure of
		// the breaker's kind, and retrying sooner only burns quota.
		r.breaker.abandon()
		r.budget.Pause(v.RetryAfter)
		return false
	}
	r.breaker.fail()
	var auth *AuthorCredentialError
	return !errors.As(v.Cause, &auth) // a refused author token will not fix itself
}

// backoff is full-jitter exponential backoff.
func (r *Resilient) backoff(attempt int) time.Duration {
	ceiling := r.cfg.RetryBase << (attempt - 1)
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

// Interface guards
var (
	_ Source = (*Resilient)(nil)
	_ Local  = (*Resilient)(nil)
)

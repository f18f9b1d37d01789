package upstreams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Clock is the time source of the resilience wrapper, injected so tests
// need not sleep.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Rate is a number of calls per period (Caddyfile "60/m").
type Rate struct {
	Calls  int
	Period time.Duration
}

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
}

// defaultRateLimitPause is how long a source that answered 429 without a
// Retry-After is left alone.
const defaultRateLimitPause = 30 * time.Second

// ErrCircuitOpen is the cause of Unknown verdicts given without calling a
// source that keeps failing.
var ErrCircuitOpen = errors.New("source failing: circuit open")

// ErrRateBudget is the cause of Unknown verdicts given without calling a
// source whose rate budget is spent (or that asked us to wait).
var ErrRateBudget = errors.New("source rate budget exhausted")

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
type Resilient struct {
	src        Source
	cfg        ResilienceConfig
	usesDomain bool
	flights    singleflight.Group
	flightMax  time.Duration // bounds one shared question, retries included
	sem        chan struct{}

	mu          sync.Mutex
	tokens      float64
	refilled    time.Time
	pausedUntil time.Time
	failures    int
	openUntil   time.Time
	trial       bool // a half-open trial call is in flight
	negative    map[string]negativeEntry
	negOrder    []negativeItem // oldest first; items of replaced entries are stale
	negGen      uint64

	calls uint64 // real upstream calls, for tests and metrics
}

// NewResilient wraps src.
func NewResilient(src Source, cfg ResilienceConfig) *Resilient {
	cfg = withDefaults(cfg)
	r := &Resilient{src: src, cfg: cfg, flightMax: flightTimeout(cfg), sem: make(chan struct{}, cfg.Concurrency), negative: map[string]negativeEntry{}}
	if d, ok := src.(DomainAware); ok {
		r.usesDomain = d.UsesDomain()
	}
	r.tokens = float64(cfg.Burst)
	r.refilled = cfg.Clock.Now()
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

// Unwrap returns the wrapped source.
func (r *Resilient) Unwrap() Source { return r.src }

// Calls returns how many times the wrapped source was really called.
func (r *Resilient) Calls() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Verify implements Source. A caller whose ctx ends first is answered
// Unknown with ctx's error; the call it shared goes on for the others.
func (r *Resilient) Verify(ctx context.Context, req Request) Verdict {
	id := r.flightKey(req)
	if reason, ok := r.negativeHit(id); ok {
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
			r.rememberInvalid(id, v.Reason)
		}
		if v.Outcome != Unknown || !retry {
			return v
		}
		last = v
	}
	return last
}

// attempt makes at most one upstream call and says whether an Unknown
// outcome is worth retrying.
func (r *Resilient) attempt(ctx context.Context, req Request) (Verdict, bool) {
	wait, ok := r.admit()
	if !ok {
		v := UnknownVerdict(ErrCircuitOpen)
		v.RetryAfter = wait
		return v, false
	}
	if wait = r.reserve(); wait > 0 {
		if wait > r.cfg.MaxWait {
			r.endTrial()
			v := UnknownVerdict(ErrRateBudget)
			v.RetryAfter = wait
			return v, false
		}
		if err := r.cfg.Clock.Sleep(ctx, wait); err != nil {
			r.endTrial()
			return UnknownVerdict(err), false
		}
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		r.endTrial()
		return UnknownVerdict(ctx.Err()), false
	}
	v, returned := r.call(ctx, req)
	if be := (*budgetError)(nil); errors.As(v.Cause, &be) {
		// An adapter's later request found the budget spent: the store said
		// nothing, and it is asked again only once the budget allows.
		v.RetryAfter = max(v.RetryAfter, be.wait)
		r.endTrial()
		return v, false
	}
	retry := r.record(v)
	return v, retry && returned // a panic is a bug: asking again will not fix it
}

// call asks the source once with the slot taken by attempt, and gives the
// slot back however the source returns. A panic in the adapter becomes an
// Unknown verdict (returned is then false): a bug in one adapter must not
// take the gateway down, nor decide anything.
func (r *Resilient) call(ctx context.Context, req Request) (v Verdict, returned bool) {
	defer func() { <-r.sem }()
	defer RecoverVerdict(r.src.Name(), &v)
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(withCallBudget(ctx, r.extraCalls()), r.cfg.Timeout)
	defer cancel()
	return r.src.Verify(cctx, req), true
}

// extraCalls is the rate budget for the HTTP requests of one Verify after
// its first, which attempt has paid for: an adapter that asks once per
// mapped product or list token spends one call of the budget per request,
// not one per question.
func (r *Resilient) extraCalls() func(context.Context) error {
	first := true
	var mu sync.Mutex
	return func(ctx context.Context) error {
		mu.Lock()
		paid := first
		first = false
		mu.Unlock()
		if paid {
			return nil
		}
		wait := r.reserve()
		if wait > r.cfg.MaxWait {
			return &budgetError{wait: wait}
		}
		r.mu.Lock()
		r.calls++
		r.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		return r.cfg.Clock.Sleep(ctx, wait)
	}
}

// budgetError is extraCalls' refusal: our own budget, not the store's
// failure, so it neither counts toward the breaker nor is retried.
type budgetError struct{ wait time.Duration }

func (e *budgetError) Error() string {
	return fmt.Sprintf("%v: next call in %s", ErrRateBudget, e.wait.Round(time.Second))
}

func (e *budgetError) Unwrap() error { return ErrRateBudget }

// callBudgetKey carries a Verify's call budget to Do.
type callBudgetKey struct{}

func withCallBudget(ctx context.Context, spend func(context.Context) error) context.Context {
	return context.WithValue(ctx, callBudgetKey{}, spend)
}

// spendCall takes one call from the budget ctx carries, if any (a source
// used without Resilient has none).
func spendCall(ctx context.Context) error {
	if spend, ok := ctx.Value(callBudgetKey{}).(func(context.Context) error); ok {
		return spend(ctx)
	}
	return nil
}

// record updates the breaker and the pause from a real call's outcome,
// tells OnUnknown, and says whether an Unknown outcome may be retried.
func (r *Resilient) record(v Verdict) bool {
	retry := r.recordState(v)
	if v.Outcome == Unknown && r.cfg.OnUnknown != nil {
		r.cfg.OnUnknown(r.src.Name(), v.Cause)
	}
	return retry
}

// recordState is record's part under r.mu.
func (r *Resilient) recordState(v Verdict) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trial = false
	if v.Outcome != Unknown {
		r.failures = 0
		r.openUntil = time.Time{}
		return false
	}
	var rl *RateLimitError
	if errors.As(v.Cause, &rl) || v.RetryAfter > 0 {
		pause := v.RetryAfter
		if pause <= 0 {
			pause = defaultRateLimitPause // a 429 that did not say how long
		}
		if until := r.cfg.Clock.Now().Add(pause); until.After(r.pausedUntil) {
			r.pausedUntil = until
		}
		return false // the source told us when; retrying sooner only burns quota
	}
	r.failures++
	if r.failures >= r.cfg.BreakerThreshold {
		r.openUntil = r.cfg.Clock.Now().Add(r.cfg.BreakerCooldown)
	}
	var auth *AuthorCredentialError
	return !errors.As(v.Cause, &auth) // a refused author token will not fix itself
}

// admit checks the circuit: closed, or half-open with no trial in flight.
func (r *Resilient) admit() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.openUntil.IsZero() {
		return 0, true
	}
	now := r.cfg.Clock.Now()
	if now.Before(r.openUntil) {
		return r.openUntil.Sub(now), false
	}
	if r.trial {
		return r.cfg.BreakerCooldown, false
	}
	r.trial = true
	return 0, true
}

// endTrial gives up a half-open trial that made no call.
func (r *Resilient) endTrial() {
	r.mu.Lock()
	r.trial = false
	r.mu.Unlock()
}

// reserve takes one call from the budget and returns how long to wait for
// it (0: go now). When the wait would exceed MaxWait nothing is taken.
func (r *Resilient) reserve() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Clock.Now()
	perCall := r.cfg.Rate.Period / time.Duration(r.cfg.Rate.Calls)
	if elapsed := now.Sub(r.refilled); elapsed > 0 {
		r.tokens = min(float64(r.cfg.Burst), r.tokens+float64(elapsed)/float64(perCall))
		r.refilled = now
	}
	var wait time.Duration
	if now.Before(r.pausedUntil) {
		wait = r.pausedUntil.Sub(now)
	}
	if r.tokens < 1 {
		wait = max(wait, time.Duration((1-r.tokens)*float64(perCall)))
	}
	if wait > r.cfg.MaxWait {
		return wait
	}
	r.tokens--
	return wait
}

// backoff is full-jitter exponential backoff.
func (r *Resilient) backoff(attempt int) time.Duration {
	ceiling := r.cfg.RetryBase << (attempt - 1)
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

// negativeHit returns the cached Invalid reason for a question, if fresh.
func (r *Resilient) negativeHit(id string) (Reason, bool) {
	if r.cfg.NegativeTTL < 0 {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.negative[id]
	if !ok {
		return "", false
	}
	if !r.cfg.Clock.Now().Before(e.until) {
		delete(r.negative, id)
		return "", false
	}
	return e.reason, true
}

// rememberInvalid caches a definitive answer, evicting the oldest entries
// beyond NegativeSize. An entry cached again goes to the back of the queue;
// its older queue item no longer matches it and evicts nothing.
func (r *Resilient) rememberInvalid(id string, reason Reason) {
	if r.cfg.NegativeTTL < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.negGen++
	r.negative[id] = negativeEntry{until: r.cfg.Clock.Now().Add(r.cfg.NegativeTTL), reason: reason, gen: r.negGen}
	r.negOrder = append(r.negOrder, negativeItem{id: id, gen: r.negGen})
	for len(r.negative) > r.cfg.NegativeSize && len(r.negOrder) > 0 {
		if it := r.negOrder[0]; r.current(it) {
			delete(r.negative, it.id)
		}
		r.negOrder = r.negOrder[1:]
	}
	if len(r.negOrder) > 2*r.cfg.NegativeSize { // drop stale items
		kept := r.negOrder[:0]
		for _, it := range r.negOrder {
			if r.current(it) {
				kept = append(kept, it)
			}
		}
		r.negOrder = kept
	}
}

// current says whether a queue item is its id's cached entry; r.mu held.
func (r *Resilient) current(it negativeItem) bool {
	e, ok := r.negative[it.id]
	return ok && e.gen == it.gen
}

type negativeEntry struct {
	until  time.Time
	reason Reason
	gen    uint64 // the queue item that may evict it
}

type negativeItem struct {
	id  string
	gen uint64
}

// Interface guards
var (
	_ Source = (*Resilient)(nil)
	_ Local  = (*Resilient)(nil)
)

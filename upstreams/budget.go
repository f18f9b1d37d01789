package upstreams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrRateBudget is the cause of Unknown verdicts given without calling a
// source whose rate budget is spent (or that asked us to wait).
var ErrRateBudget = errors.New("source rate budget exhausted")

// defaultRateLimitPause is how long a source that answered 429 without a
// Retry-After is left alone.
const defaultRateLimitPause = 30 * time.Second

// Budget is a source's call budget across the instance: a token bucket of
// its Rate, and the pause its Retry-After asked for. Every request an
// adapter sends through its Client spends one call; a caller waits at most
// MaxWait for it, else is refused with ErrRateBudget and how long to wait.
//
// Background rechecks (requests sent with a context from Resilient.Recheck)
// spend the same bucket under two more rules, so that they never take more
// than half of the budget and never take the call an activation needs:
//
//   - a second bucket at half the rate, holding half the burst (at least
//     one call), must also have a call: over any period T rechecks spend
//     at most burst/2 + T*rate/2, half of what the main bucket allows;
//   - the main bucket must hold the reserve, floor(burst/2) calls, beyond
//     the one the recheck takes: after any recheck, activations still find
//     that many calls in the main bucket. (With a burst of 1 nothing can
//     be reserved; a recheck then waits for a full bucket.)
//
// A recheck never waits inside the budget and never takes a call ahead of
// time (an activation may: it waits for its call up to MaxWait): it goes
// when both rules hold now, else it is refused with its RecheckWait.
type Budget struct {
	rate    Rate
	maxWait time.Duration
	clock   Clock
	reserve float64 // calls a recheck must leave in the main bucket

	mu           sync.Mutex
	bucket       *rate.Limiter
	recheckRate  Rate
	recheck      *rate.Limiter
	pausedUntil  time.Time
	spent        uint64
	recheckSpent uint64
}

// NewBudget returns a full budget of r holding at most burst calls, whose
// callers wait at most maxWait for a call.
func NewBudget(r Rate, burst int, maxWait time.Duration, clock Clock) *Budget {
	if clock == nil {
		clock = realClock{}
	}
	if burst < 1 {
		burst = 1
	}
	half := Rate{Calls: r.Calls, Period: 2 * r.Period}
	return &Budget{
		rate: r, maxWait: maxWait, clock: clock, bucket: r.Bucket(burst),
		reserve:     float64(burst / 2),
		recheckRate: half, recheck: half.Bucket(max(1, burst/2)),
	}
}

// Wait is how long until a call could go, taking nothing (0: now).
func (b *Budget) Wait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waitLocked(b.clock.Now())
}

func (b *Budget) waitLocked(now time.Time) time.Duration {
	wait := b.rate.TokenWait(b.bucket, now)
	if now.Before(b.pausedUntil) {
		wait = max(wait, b.pausedUntil.Sub(now))
	}
	return wait
}

// take takes one call and returns how long to wait for it (0: go now).
// When the wait would exceed MaxWait nothing is taken.
func (b *Budget) take() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	wait := b.waitLocked(now)
	if wait > b.maxWait {
		return wait
	}
	b.bucket.ReserveN(now, 1)
	b.spent++
	return wait
}

// Spend takes one call, waiting for it up to MaxWait or until ctx ends.
// A refusal is a *BudgetError: our own budget, not the source failing.
// With a recheck's context (IsRecheck) it spends under the recheck rules
// and never waits.
func (b *Budget) Spend(ctx context.Context) error {
	if IsRecheck(ctx) {
		if wait := b.takeRecheck(); wait > 0 {
			return &BudgetError{Wait: wait}
		}
		return nil
	}
	wait := b.take()
	if wait > b.maxWait {
		return &BudgetError{Wait: wait}
	}
	if wait <= 0 {
		return nil
	}
	return b.clock.Sleep(ctx, wait)
}

// RecheckWait is how long until a recheck could take a call, taking
// nothing (0: now): the recheck bucket's wait, the main bucket's wait for
// its reserve plus one call, and a Retry-After pause. A worker paces its
// rechecks of the source by it.
func (b *Budget) RecheckWait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recheckWaitLocked(b.clock.Now())
}

func (b *Budget) recheckWaitLocked(now time.Time) time.Duration {
	wait := max(b.recheckRate.TokenWait(b.recheck, now), b.rate.TokensWait(b.bucket, now, 1+b.reserve))
	if now.Before(b.pausedUntil) {
		wait = max(wait, b.pausedUntil.Sub(now))
	}
	return wait
}

// AwaitRecheck waits on the budget's clock until a recheck could take a
// call, as long as that is at most limit away in all, and returns 0; else
// (or when ctx ends) it returns how long the wait still is, having taken
// nothing either way. It is how a worker paces a burst of due licences to
// the recheck share instead of deferring every licence past the bucket's
// few calls: at a rate of 6,000/m the share refills a call every 20 ms.
func (b *Budget) AwaitRecheck(ctx context.Context, limit time.Duration) time.Duration {
	waited := time.Duration(0)
	for {
		wait := b.RecheckWait()
		if wait <= 0 || waited+wait > limit {
			return wait
		}
		if err := b.clock.Sleep(ctx, wait); err != nil {
			return wait
		}
		waited += wait
	}
}

// takeRecheck takes one call for a recheck from both buckets when the
// recheck rules allow it now, and returns 0; else it takes nothing and
// returns how long until they would.
func (b *Budget) takeRecheck() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	if wait := b.recheckWaitLocked(now); wait > 0 {
		return wait
	}
	b.recheck.ReserveN(now, 1)
	b.bucket.ReserveN(now, 1)
	b.spent++
	b.recheckSpent++
	return 0
}

// Pause leaves the source alone for d (a Retry-After; 0: the default
// pause of a 429 that did not say how long).
func (b *Budget) Pause(d time.Duration) {
	if d <= 0 {
		d = defaultRateLimitPause
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if until := b.clock.Now().Add(d); until.After(b.pausedUntil) {
		b.pausedUntil = until
	}
}

// Spent returns how many calls were taken: the requests sent, rechecks'
// included.
func (b *Budget) Spent() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
}

// RecheckSpent returns how many of the calls taken were rechecks'.
func (b *Budget) RecheckSpent() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.recheckSpent
}

// BudgetError is Spend's refusal. It wraps ErrRateBudget.
type BudgetError struct {
	// Wait is how long until the budget would allow a call.
	Wait time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%v: next call in %s", ErrRateBudget, e.Wait.Round(time.Second))
}

func (e *BudgetError) Unwrap() error { return ErrRateBudget }

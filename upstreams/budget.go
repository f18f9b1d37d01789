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
type Budget struct {
	rate    Rate
	maxWait time.Duration
	clock   Clock

	mu          sync.Mutex
	bucket      *rate.Limiter
	pausedUntil time.Time
	spent       uint64
}

// NewBudget returns a full budget of r holding at most burst calls, whose
// callers wait at most maxWait for a call.
func NewBudget(r Rate, burst int, maxWait time.Duration, clock Clock) *Budget {
	if clock == nil {
		clock = realClock{}
	}
	return &Budget{rate: r, maxWait: maxWait, clock: clock, bucket: r.Bucket(burst)}
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

// reserve takes one call and returns how long to wait for it (0: go now).
// When the wait would exceed MaxWait nothing is taken.
func (b *Budget) reserve() time.Duration {
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
func (b *Budget) Spend(ctx context.Context) error {
	wait := b.reserve()
	if wait > b.maxWait {
		return &BudgetError{Wait: wait}
	}
	if wait <= 0 {
		return nil
	}
	return b.clock.Sleep(ctx, wait)
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

// Spent returns how many calls were taken: the requests sent.
func (b *Budget) Spent() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent
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

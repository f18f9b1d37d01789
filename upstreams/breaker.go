package upstreams

import (
	"errors"
	"sync"
	"time"
)

// ErrCircuitOpen is the cause of Unknown verdicts given without calling a
// source that keeps failing.
var ErrCircuitOpen = errors.New("source failing: circuit open")

// breaker is a source's circuit breaker: threshold consecutive failures
// open it for cooldown; then one trial call at a time decides whether it
// closes (success) or opens again (failure).
type breaker struct {
	threshold int
	cooldown  time.Duration
	clock     Clock

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
}

// admit says whether a call may go: the circuit is closed, or half-open
// with no trial in flight (this call becomes the trial). When not, it says
// how long until it may.
func (b *breaker) admit() (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return 0, true
	}
	now := b.clock.Now()
	if now.Before(b.openUntil) {
		return b.openUntil.Sub(now), false
	}
	if b.trial {
		return b.cooldown, false
	}
	b.trial = true
	return 0, true
}

// wait is how long until the breaker would admit a call, taking nothing
// (0: now, or a half-open trial is due).
func (b *breaker) wait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return 0
	}
	if now := b.clock.Now(); now.Before(b.openUntil) {
		return b.openUntil.Sub(now)
	}
	if b.trial {
		return b.cooldown
	}
	return 0
}

// abandon gives up a half-open trial that made no call.
func (b *breaker) abandon() {
	b.mu.Lock()
	b.trial = false
	b.mu.Unlock()
}

// succeed closes the circuit: the source answered.
func (b *breaker) succeed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	b.failures = 0
	b.openUntil = time.Time{}
}

// fail counts a failure, opening the circuit at the threshold.
func (b *breaker) fail() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = b.clock.Now().Add(b.cooldown)
	}
}

// state says whether the circuit is closed, open, or half-open (its
// cooldown is over: the next call is a trial).
func (b *breaker) state() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return BreakerClosed
	case b.clock.Now().Before(b.openUntil):
		return BreakerOpen
	}
	return BreakerHalfOpen
}

package upstreams

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// SourceHealth is what an author needs to see of a source at a glance
// (the console's overview, SPEC section 13): its breaker, how much of its
// rate budget is left, and what its last failed call was. It holds no
// part of any request: a failure is named by its class only.
type SourceHealth struct {
	Breaker BreakerState
	// BudgetLeft is how many calls the budget could make now, of
	// BudgetBurst; PausedFor is what is left of a Retry-After pause.
	BudgetLeft, BudgetBurst int
	PausedFor               time.Duration
	// LastFailure is the class of the last call that failed (FailureClass),
	// at LastFailureAt; empty when none has.
	LastFailure   string
	LastFailureAt time.Time
}

// Failure classes (FailureClass).
const (
	FailureRateLimited       = "rate_limited"
	FailureCredentialRefused = "credential_refused"
	FailureTimeout           = "timeout"
	FailureHTTPStatus        = "http_status"
	FailureUnreachable       = "unreachable"
	FailureOther             = "other"
)

// FailureClass names the kind of a failed call's cause, in words an
// author can act on and a metric label can hold: never the cause's text,
// which may quote a vendor's answer.
func FailureClass(cause error) string {
	var (
		rl   *RateLimitError
		auth *AuthorCredentialError
		st   *StatusError
		ne   net.Error
	)
	switch {
	case errors.As(cause, &rl):
		return FailureRateLimited
	case errors.As(cause, &auth):
		return FailureCredentialRefused
	case errors.Is(cause, context.DeadlineExceeded), errors.As(cause, &ne) && ne.Timeout():
		return FailureTimeout
	case errors.As(cause, &st):
		return FailureHTTPStatus
	case errors.As(cause, &ne):
		return FailureUnreachable
	}
	return FailureOther
}

// lastFailure remembers a source's last failed call.
type lastFailure struct {
	mu    sync.Mutex
	class string
	at    time.Time
}

func (l *lastFailure) note(cause error, at time.Time) {
	class := FailureClass(cause)
	l.mu.Lock()
	l.class, l.at = class, at
	l.mu.Unlock()
}

func (l *lastFailure) read() (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.class, l.at
}

// Health reports the source's breaker, budget and last failure.
func (r *Resilient) Health() SourceHealth {
	h := SourceHealth{Breaker: r.breaker.state()}
	h.BudgetLeft, h.BudgetBurst, h.PausedFor = r.budget.left()
	h.LastFailure, h.LastFailureAt = r.failure.read()
	return h
}

// left is how many calls the main bucket holds now, its burst, and the
// rest of a Retry-After pause.
func (b *Budget) left() (n, burst int, paused time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	n = int(b.bucket.TokensAt(now))
	if n < 0 {
		n = 0
	}
	if b.pausedUntil.After(now) {
		paused = b.pausedUntil.Sub(now)
	}
	return n, b.bucket.Burst(), paused
}

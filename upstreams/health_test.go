package upstreams

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

func TestFailureClass(t *testing.T) {
	for _, c := range []struct {
		cause error
		want  string
	}{
		{&RateLimitError{Source: "s", RetryAfter: time.Second}, FailureRateLimited},
		{fmt.Errorf("verify: %w", &AuthorCredentialError{Source: "s", Status: 401}), FailureCredentialRefused},
		{context.DeadlineExceeded, FailureTimeout},
		{&StatusError{Source: "s", Status: 502}, FailureHTTPStatus},
		{&net.OpError{Op: "dial", Err: fmt.Errorf("connection refused")}, FailureUnreachable},
		{fmt.Errorf("strange answer"), FailureOther},
	} {
		if got := FailureClass(c.cause); got != c.want {
			t.Errorf("FailureClass(%v) = %s, want %s", c.cause, got, c.want)
		}
	}
}

// TestSourceHealth reads a source's breaker, budget left and last failure
// after calls that fail and succeed.
func TestSourceHealth(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: down}
	r := NewResilient(src, ResilienceConfig{Clock: clock, Retries: -1, BreakerThreshold: 2, BreakerCooldown: time.Minute,
		Rate: Rate{Calls: 10, Period: time.Minute}, Burst: 10})
	h := r.Health()
	if h.Breaker != BreakerClosed || h.BudgetBurst != 10 || h.LastFailure != "" || !h.LastFailureAt.IsZero() {
		t.Fatalf("fresh: %+v", h)
	}
	r.Verify(context.Background(), Request{Key: "k"})
	clock.Advance(time.Second)
	r.Verify(context.Background(), Request{Key: "k"})
	h = r.Health()
	if h.Breaker != BreakerOpen || h.LastFailure != FailureOther || !h.LastFailureAt.Equal(clock.Now()) {
		t.Fatalf("after two failures: %+v", h)
	}
	src.set(func() Verdict {
		return Verdict{Outcome: Unknown, Cause: &RateLimitError{Source: "s"}, RetryAfter: 30 * time.Second}
	})
	clock.Advance(time.Minute)
	r.Verify(context.Background(), Request{Key: "k2"})
	if h = r.Health(); h.LastFailure != FailureRateLimited || h.PausedFor != 30*time.Second {
		t.Fatalf("after a 429: %+v", h)
	}
}

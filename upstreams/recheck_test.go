package upstreams

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// recheckingSource is a scriptedSource whose Recheck answers like its
// Verify, counting rechecks and whether each came with a recheck context.
type recheckingSource struct {
	scriptedSource
	rechecks    atomic.Int64
	unmarked    atomic.Int64 // rechecks whose context was not a recheck's
	marked      atomic.Int64 // verifications whose context was a recheck's
	unsupported bool         // answer ErrRecheckUnsupported without a call
}

func (s *recheckingSource) Verify(ctx context.Context, req Request) Verdict {
	if IsRecheck(ctx) {
		s.marked.Add(1)
	}
	return s.scriptedSource.Verify(ctx, req)
}

func (s *recheckingSource) Recheck(ctx context.Context, req RecheckRequest) Verdict {
	if s.unsupported {
		return UnknownVerdict(ErrRecheckUnsupported)
	}
	s.rechecks.Add(1)
	if !IsRecheck(ctx) {
		s.unmarked.Add(1)
	}
	return s.scriptedSource.Verify(ctx, req.Request())
}

func buildRechecking(t *testing.T, src *recheckingSource, cfg ResilienceConfig) *Resilient {
	t.Helper()
	r, err := BuildResilient(cfg, func(c Client) (Source, error) {
		src.client = c
		return src, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// frozenClock never moves: a caller that would have to wait for the
// budget is answered at once (its Sleep fails), so a test sees exactly
// which calls the budget allows now.
type frozenClock struct{ now time.Time }

func (c frozenClock) Now() time.Time { return c.now }
func (c frozenClock) Sleep(context.Context, time.Duration) error {
	return context.DeadlineExceeded
}

// TestRechecksLeaveTheActivationsTheirCalls: rechecks spending as fast as
// they can at one instant stop at half of the burst, and the activations
// that arrive then still find the other half.
func TestRechecksLeaveTheActivationsTheirCalls(t *testing.T) {
	src := &recheckingSource{scriptedSource: scriptedSource{verdict: valid}}
	r := buildRechecking(t, src, ResilienceConfig{Clock: frozenClock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Rate: Rate{Calls: 60, Period: time.Minute}, Burst: 10})
	rechecked := 0
	for i := 0; i < 20; i++ {
		v := r.Recheck(context.Background(), RecheckRequest{Key: string(rune('a' + i)), Product: "p"})
		if v.Outcome != Valid {
			if v.RetryAfter <= 0 && !errors.Is(v.Cause, context.DeadlineExceeded) {
				t.Fatalf("recheck refused without a wait: %+v", v)
			}
			continue
		}
		rechecked++
	}
	if rechecked != 5 {
		t.Fatalf("%d rechecks at one instant, want 5 (half the burst)", rechecked)
	}
	if w := r.RecheckWait(); w <= 0 {
		t.Errorf("RecheckWait %v after the rechecks' share was spent", w)
	}
	for i := 0; i < 5; i++ {
		if v := r.Verify(context.Background(), Request{Key: "act" + string(rune('a'+i))}); v.Outcome != Valid {
			t.Fatalf("activation %d after the rechecks: %+v", i, v)
		}
	}
	if got := r.Budget().RecheckSpent(); got != 5 {
		t.Errorf("RecheckSpent %d, want 5", got)
	}
	if src.unmarked.Load() != 0 || src.marked.Load() != 0 {
		t.Errorf("contexts: %d rechecks unmarked, %d verifications marked", src.unmarked.Load(), src.marked.Load())
	}
}

// TestRechecksSpendAtMostHalf: over two simulated hours, rechecks asking
// without pause and activations arriving at half the rate share the
// budget: rechecks never exceed half of it, and every activation gets its
// call.
func TestRechecksSpendAtMostHalf(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	src := &recheckingSource{scriptedSource: scriptedSource{verdict: valid}}
	rate := Rate{Calls: 60, Period: time.Minute}
	r := buildRechecking(t, src, ResilienceConfig{Clock: clock, Rate: rate, Burst: 10, NegativeTTL: -1})
	var activations, refused int
	nextActivation := start
	for i := 0; clock.Now().Sub(start) < 2*time.Hour; i++ {
		if !clock.Now().Before(nextActivation) {
			nextActivation = nextActivation.Add(2 * time.Second) // 30/m, half the rate
			activations++
			if v := r.Verify(context.Background(), Request{Key: "act"}); v.Outcome != Valid {
				refused++
			}
			continue
		}
		if w := r.RecheckWait(); w > 0 {
			// a worker paces itself by RecheckWait
			clock.Advance(min(w, nextActivation.Sub(clock.Now())))
			continue
		}
		if v := r.Recheck(context.Background(), RecheckRequest{Key: "k", Product: "p"}); v.Outcome != Valid {
			t.Fatalf("recheck with RecheckWait 0: %+v", v)
		}
	}
	elapsed := clock.Now().Sub(start)
	rechecks := r.Budget().RecheckSpent()
	half := 5 + uint64(elapsed/(2*rate.Every()))
	if rechecks > half {
		t.Errorf("%d rechecks in %v, more than half the budget (%d)", rechecks, elapsed, half)
	}
	if rechecks < half*9/10 {
		t.Errorf("%d rechecks in %v, want close to half the budget (%d)", rechecks, elapsed, half)
	}
	if refused > 0 {
		t.Errorf("%d of %d activations refused while rechecks were spending", refused, activations)
	}
	if total := r.Budget().Spent(); total > 10+uint64(elapsed/rate.Every()) {
		t.Errorf("%d calls in %v, more than the budget", total, elapsed)
	}
}

// TestRecheckReachesTheVendor: a recheck is never answered from the
// negative cache, and a Valid one (a renewal) clears it for activations.
func TestRecheckReachesTheVendor(t *testing.T) {
	clock := newFakeClock()
	src := &recheckingSource{scriptedSource: scriptedSource{verdict: func() Verdict { return InvalidVerdict(Expired) }}}
	r := buildRechecking(t, src, ResilienceConfig{Clock: clock})
	req := Request{Key: "k", Product: "p"}
	for i := 0; i < 2; i++ {
		if v := r.Verify(context.Background(), req); v.Outcome != Invalid {
			t.Fatalf("verify %d: %+v", i, v)
		}
	}
	if src.calls.Load() != 1 {
		t.Fatalf("%d calls: the negative cache did not answer", src.calls.Load())
	}
	src.set(valid) // renewed at the vendor
	if v := r.Recheck(context.Background(), RecheckRequest{Key: "k", Product: "p"}); v.Outcome != Valid {
		t.Fatalf("recheck: %+v", v)
	}
	if v := r.Verify(context.Background(), req); v.Outcome != Valid {
		t.Fatalf("verify after a valid recheck still cached: %+v", v)
	}
	if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
		t.Fatalf("verify without a product: %+v", v)
	}
	if src.calls.Load() != 4 {
		t.Errorf("%d calls, want 4", src.calls.Load())
	}
	src.set(revoked)
	for i := 0; i < 2; i++ {
		if v := r.Recheck(context.Background(), RecheckRequest{Key: "k", Product: "p"}); v.Outcome != Invalid {
			t.Fatalf("recheck %d: %+v", i, v)
		}
	}
	if src.rechecks.Load() != 3 {
		t.Errorf("%d rechecks reached the source, want 3", src.rechecks.Load())
	}
}

// TestRecheckHonoursPauseAndBreaker: a Retry-After and an open breaker
// hold rechecks too, RecheckWait says how long, and an Unknown recheck is
// not retried.
func TestRecheckHonoursPauseAndBreaker(t *testing.T) {
	clock := newFakeClock()
	src := &recheckingSource{scriptedSource: scriptedSource{verdict: func() Verdict {
		v := UnknownVerdict(&RateLimitError{Source: "fake", RetryAfter: 10 * time.Minute})
		v.RetryAfter = 10 * time.Minute
		return v
	}}}
	r := buildRechecking(t, src, ResilienceConfig{Clock: clock, BreakerThreshold: 2, BreakerCooldown: time.Hour, NegativeTTL: -1})
	if v := r.Verify(context.Background(), Request{Key: "a"}); v.RetryAfter != 10*time.Minute {
		t.Fatalf("429: %+v", v)
	}
	if w := r.RecheckWait(); w < 9*time.Minute {
		t.Errorf("RecheckWait %v during a 10m Retry-After", w)
	}
	v := r.Recheck(context.Background(), RecheckRequest{Key: "b"})
	if v.Outcome != Unknown || !errors.Is(v.Cause, ErrRateBudget) || v.RetryAfter < 9*time.Minute {
		t.Fatalf("recheck during the pause: %+v", v)
	}
	if src.rechecks.Load() != 0 {
		t.Fatalf("the source was rechecked during the pause")
	}
	clock.Advance(11 * time.Minute)
	src.set(down)
	if v := r.Recheck(context.Background(), RecheckRequest{Key: "b"}); v.Outcome != Unknown {
		t.Fatalf("down: %+v", v)
	}
	if src.rechecks.Load() != 1 {
		t.Fatalf("an Unknown recheck was retried: %d calls", src.rechecks.Load())
	}
	r.Recheck(context.Background(), RecheckRequest{Key: "c"}) // the second failure opens the breaker
	v = r.Recheck(context.Background(), RecheckRequest{Key: "d"})
	if !errors.Is(v.Cause, ErrCircuitOpen) || v.RetryAfter <= 0 {
		t.Fatalf("open breaker: %+v", v)
	}
	if w := r.RecheckWait(); w < 59*time.Minute {
		t.Errorf("RecheckWait %v with the breaker open for an hour", w)
	}
	if v := r.Verify(context.Background(), Request{Key: "e"}); !errors.Is(v.Cause, ErrCircuitOpen) {
		t.Errorf("activations do not share the breaker: %+v", v)
	}
}

// TestRecheckUnsupported: a source without a recheck call is never asked,
// and a recheck it cannot make does not count against its breaker.
func TestRecheckUnsupported(t *testing.T) {
	plain := &scriptedSource{verdict: valid}
	r := NewResilient(plain, ResilienceConfig{})
	if v := r.Recheck(context.Background(), RecheckRequest{Key: "k"}); !errors.Is(v.Cause, ErrRecheckUnsupported) {
		t.Fatalf("not a Rechecker: %+v", v)
	}
	if plain.calls.Load() != 0 {
		t.Fatal("a source without a recheck call was asked")
	}
	src := &recheckingSource{scriptedSource: scriptedSource{verdict: valid}, unsupported: true}
	r = buildRechecking(t, src, ResilienceConfig{BreakerThreshold: 2})
	for i := 0; i < 5; i++ {
		if v := r.Recheck(context.Background(), RecheckRequest{Key: "k"}); !errors.Is(v.Cause, ErrRecheckUnsupported) {
			t.Fatalf("unsupported: %+v", v)
		}
	}
	if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
		t.Fatalf("unsupported rechecks opened the breaker: %+v", v)
	}
}

// TestBudgetWithBurstOne: with nothing to reserve, a recheck takes the
// only call of a full bucket and then waits for both buckets.
func TestBudgetWithBurstOne(t *testing.T) {
	clock := newFakeClock()
	b := NewBudget(Rate{Calls: 1, Period: time.Minute}, 1, time.Second, clock)
	ctx := withRecheck(context.Background())
	if err := b.Spend(ctx); err != nil {
		t.Fatalf("first recheck: %v", err)
	}
	var be *BudgetError
	if err := b.Spend(ctx); !errors.As(err, &be) || be.Wait < time.Minute {
		t.Fatalf("second recheck: %v", err)
	}
	clock.Advance(time.Minute)
	if w := b.RecheckWait(); w != time.Minute {
		t.Errorf("RecheckWait %v, want 1m: the recheck bucket refills at half the rate", w)
	}
	if w := b.Wait(); w != 0 {
		t.Errorf("Wait %v: activations wait for nothing", w)
	}
}

// TestBudgetAwaitRecheck: a recheck waits the moments its share takes to
// refill, on the budget's clock, and takes nothing; a longer wait (a
// Retry-After) is answered at once.
func TestBudgetAwaitRecheck(t *testing.T) {
	clock := newFakeClock()
	b := NewBudget(Rate{Calls: 6000, Period: time.Minute}, 10, time.Second, clock)
	ctx := withRecheck(context.Background())
	for b.RecheckWait() == 0 {
		if err := b.Spend(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start, spent := clock.Now(), b.RecheckSpent()
	if w := b.AwaitRecheck(context.Background(), 2*time.Second); w != 0 {
		t.Fatalf("AwaitRecheck answered %v, want 0 after a refill", w)
	}
	if took := clock.Now().Sub(start); took <= 0 || took > 50*time.Millisecond {
		t.Errorf("waited %v for one call at 50 rechecks/s", took)
	}
	if b.RecheckSpent() != spent {
		t.Error("AwaitRecheck took a call")
	}
	if err := b.Spend(ctx); err != nil {
		t.Fatalf("the recheck after the wait: %v", err)
	}
	b.Pause(time.Hour)
	start = clock.Now()
	if w := b.AwaitRecheck(context.Background(), 2*time.Second); w < 59*time.Minute {
		t.Errorf("AwaitRecheck during a 1h Retry-After: %v", w)
	}
	if !clock.Now().Equal(start) {
		t.Error("AwaitRecheck slept through a wait beyond its limit")
	}
}

package upstreams

import (
	"context"
	"sync"
	"testing"
	"time"
)

// countingObserver counts what the resilience layer reports.
type countingObserver struct {
	mu      sync.Mutex
	calls   map[string]int // source/outcome
	waited  int
	refused int
}

func (o *countingObserver) Call(source, outcome string, _ time.Duration) {
	o.mu.Lock()
	o.calls[source+"/"+outcome]++
	o.mu.Unlock()
}

func (o *countingObserver) BudgetWait(_ string, _ time.Duration, refused bool) {
	o.mu.Lock()
	if refused {
		o.refused++
	} else {
		o.waited++
	}
	o.mu.Unlock()
}

// TestObserverSeesCallsBreakerAndBudget: every real call is reported by
// outcome, calls the breaker or the budget answered are not, a refusal
// by the budget is, and BreakerState follows the circuit.
func TestObserverSeesCallsBreakerAndBudget(t *testing.T) {
	clock := newFakeClock()
	obs := &countingObserver{calls: map[string]int{}}
	src := &scriptedSource{verdict: down}
	r := NewResilient(src, ResilienceConfig{Clock: clock, Retries: -1, BreakerThreshold: 2, BreakerCooldown: time.Minute,
		Rate: Rate{Calls: 1000, Period: time.Second}, Observer: obs})
	if r.BreakerState() != BreakerClosed {
		t.Fatal(r.BreakerState())
	}
	for range 3 {
		r.Verify(context.Background(), Request{Key: "k"})
	}
	if r.BreakerState() != BreakerOpen || obs.calls["fake/unknown"] != 2 {
		t.Fatalf("breaker %s, calls %v", r.BreakerState(), obs.calls)
	}
	clock.Advance(time.Minute)
	if r.BreakerState() != BreakerHalfOpen {
		t.Fatal(r.BreakerState())
	}
	src.set(valid)
	r.Verify(context.Background(), Request{Key: "k"})
	if r.BreakerState() != BreakerClosed || obs.calls["fake/valid"] != 1 {
		t.Fatalf("breaker %s, calls %v", r.BreakerState(), obs.calls)
	}

	budgeted := buildBudgeted(t, &scriptedSource{verdict: valid}, ResilienceConfig{Clock: clock,
		Rate: Rate{Calls: 1, Period: time.Minute}, Burst: 1, MaxWait: time.Second, Observer: obs})
	budgeted.Verify(context.Background(), Request{Key: "a"})
	budgeted.Verify(context.Background(), Request{Key: "b"})
	if obs.refused != 1 || obs.calls["fake/valid"] != 2 {
		t.Fatalf("refused %d, calls %v", obs.refused, obs.calls)
	}
}

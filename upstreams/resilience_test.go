package upstreams

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock advances only when told to or when something sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// scriptedSource answers with verdict() and counts calls; gate, when set,
// holds every call until closed. Built by buildBudgeted, it spends one call
// of its Client's budget first, as an HTTP adapter's request does.
type scriptedSource struct {
	calls   atomic.Int64
	gate    chan struct{}
	mu      sync.Mutex
	verdict func() Verdict
	client  Client
}

// buildBudgeted wraps src with BuildResilient, giving it the wrapper's
// Client.
func buildBudgeted(t *testing.T, src *scriptedSource, cfg ResilienceConfig) *Resilient {
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

func (s *scriptedSource) Name() string                          { return "fake" }
func (s *scriptedSource) CanonicalKey(k string) (string, error) { return k, nil }
func (s *scriptedSource) set(f func() Verdict)                  { s.mu.Lock(); s.verdict = f; s.mu.Unlock() }
func (s *scriptedSource) Verify(ctx context.Context, _ Request) Verdict {
	s.calls.Add(1)
	if err := s.client.Spend(ctx); err != nil {
		return UnknownVerdict(err)
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return UnknownVerdict(ctx.Err())
		}
	}
	s.mu.Lock()
	f := s.verdict
	s.mu.Unlock()
	return f()
}

func valid() Verdict   { return ValidVerdict(Record{Product: "p"}) }
func down() Verdict    { return UnknownVerdict(errors.New("connection refused")) }
func revoked() Verdict { return InvalidVerdict(Revoked) }

func TestCoalescesConcurrentQuestions(t *testing.T) {
	src := &scriptedSource{gate: make(chan struct{}), verdict: valid}
	r := NewResilient(src, ResilienceConfig{})
	const n = 50
	var wg, started sync.WaitGroup
	results := make(chan Verdict, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results <- r.Verify(context.Background(), Request{Key: "k", Domain: "d" + string(rune('a'+i%26))})
		}()
	}
	// Let every caller join the flight before the upstream answers: all are
	// running, the call has begun, and a pause lets the last ones reach it
	// even on a loaded machine.
	started.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for src.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(results)
	for v := range results {
		if v.Outcome != Valid {
			t.Fatalf("verdict %v", v.Outcome)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("%d upstream calls for %d concurrent questions, want 1", got, n)
	}
}

func TestRetryAfterPausesTheSource(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: func() Verdict {
		v := UnknownVerdict(&RateLimitError{Source: "fake", RetryAfter: 30 * time.Second})
		v.RetryAfter = 30 * time.Second
		return v
	}}
	r := NewResilient(src, ResilienceConfig{Clock: clock, NegativeTTL: -1})
	v := r.Verify(context.Background(), Request{Key: "a"})
	if v.Outcome != Unknown || v.RetryAfter != 30*time.Second {
		t.Fatalf("first: %+v", v)
	}
	if src.calls.Load() != 1 {
		t.Fatalf("a 429 was retried: %d calls", src.calls.Load())
	}
	src.set(valid)
	for _, step := range []time.Duration{0, 10 * time.Second, 14 * time.Second} {
		clock.Advance(step)
		v := r.Verify(context.Background(), Request{Key: "other-key"})
		if v.Outcome != Unknown || !errors.Is(v.Cause, ErrRateBudget) || v.RetryAfter <= 0 {
			t.Fatalf("during the pause: %+v", v)
		}
	}
	if src.calls.Load() != 1 {
		t.Fatalf("source called during the pause: %d calls", src.calls.Load())
	}
	// Within MaxWait (5s) of the end, callers wait for it instead.
	clock.Advance(2 * time.Second) // 26s in
	if v := r.Verify(context.Background(), Request{Key: "b"}); v.Outcome != Valid {
		t.Fatalf("near the end of the pause: %+v", v)
	}
	if !clock.Now().After(time.Date(2026, 1, 1, 0, 0, 29, 0, time.UTC)) {
		t.Fatalf("the call did not wait for the pause to end: now %v", clock.Now())
	}
	if src.calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", src.calls.Load())
	}
}

func TestBreakerOpensAndCloses(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: down}
	r := NewResilient(src, ResilienceConfig{Clock: clock, Retries: -1, BreakerThreshold: 3, BreakerCooldown: time.Minute, Rate: Rate{Calls: 1000, Period: time.Second}})
	for i := 0; i < 3; i++ {
		if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Unknown {
			t.Fatal(v)
		}
	}
	if src.calls.Load() != 3 {
		t.Fatalf("%d calls before opening", src.calls.Load())
	}
	// Open: fast Unknown, no call.
	v := r.Verify(context.Background(), Request{Key: "k"})
	if !errors.Is(v.Cause, ErrCircuitOpen) || v.RetryAfter <= 0 || src.calls.Load() != 3 {
		t.Fatalf("open breaker: %+v, %d calls", v, src.calls.Load())
	}
	// After the cooldown a trial call that fails re-opens it.
	clock.Advance(time.Minute)
	r.Verify(context.Background(), Request{Key: "k"})
	if src.calls.Load() != 4 {
		t.Fatalf("no trial call after cooldown: %d", src.calls.Load())
	}
	if v := r.Verify(context.Background(), Request{Key: "k"}); !errors.Is(v.Cause, ErrCircuitOpen) {
		t.Fatalf("failed trial did not re-open: %+v", v)
	}
	// A successful trial closes it.
	clock.Advance(time.Minute)
	src.set(valid)
	if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
		t.Fatalf("trial: %+v", v)
	}
	for i := 0; i < 3; i++ {
		if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
			t.Fatalf("closed breaker: %+v", v)
		}
	}
}

func TestRetriesUnknownOnly(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{}
	var n atomic.Int64
	src.set(func() Verdict {
		if n.Add(1) < 3 {
			return down()
		}
		return valid()
	})
	r := NewResilient(src, ResilienceConfig{Clock: clock, Retries: 2})
	if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
		t.Fatalf("after retries: %+v", v)
	}
	if src.calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", src.calls.Load())
	}
	// An author-credential failure is not retried: it will not fix itself.
	src.set(func() Verdict { return UnknownVerdict(&AuthorCredentialError{Source: "fake", Status: 401}) })
	before := src.calls.Load()
	var alerted error
	r2 := NewResilient(src, ResilienceConfig{Clock: clock, OnUnknown: func(_ string, err error) { alerted = err }})
	r2.Verify(context.Background(), Request{Key: "k2"})
	if src.calls.Load()-before != 1 {
		t.Fatalf("author credential failure retried: %d calls", src.calls.Load()-before)
	}
	var ace *AuthorCredentialError
	if !errors.As(alerted, &ace) {
		t.Fatalf("OnUnknown not told: %v", alerted)
	}
}

func TestNegativeCache(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: revoked}
	r := NewResilient(src, ResilienceConfig{Clock: clock, NegativeTTL: time.Minute})
	for i := 0; i < 5; i++ {
		if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Invalid || v.Reason != Revoked {
			t.Fatalf("%+v", v)
		}
	}
	if src.calls.Load() != 1 {
		t.Fatalf("%d calls for a cached invalid key", src.calls.Load())
	}
	clock.Advance(61 * time.Second)
	r.Verify(context.Background(), Request{Key: "k"})
	if src.calls.Load() != 2 {
		t.Fatalf("negative entry outlived its TTL")
	}
	// Valid answers are never cached here (the licence store keeps licences).
	src.set(valid)
	r.Verify(context.Background(), Request{Key: "v"})
	r.Verify(context.Background(), Request{Key: "v"})
	if src.calls.Load() != 4 {
		t.Fatalf("valid answers cached: %d calls", src.calls.Load())
	}
}

func TestRateBudget(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: valid}
	r := buildBudgeted(t, src, ResilienceConfig{Clock: clock, Rate: Rate{Calls: 3, Period: time.Minute}, Burst: 3, MaxWait: time.Second})
	for i := 0; i < 3; i++ {
		if v := r.Verify(context.Background(), Request{Key: string(rune('a' + i))}); v.Outcome != Valid {
			t.Fatalf("call %d: %+v", i, v)
		}
	}
	v := r.Verify(context.Background(), Request{Key: "d"})
	if !errors.Is(v.Cause, ErrRateBudget) || v.RetryAfter < 19*time.Second {
		t.Fatalf("budget spent: %+v", v)
	}
	clock.Advance(20 * time.Second)
	if v := r.Verify(context.Background(), Request{Key: "d"}); v.Outcome != Valid {
		t.Fatalf("after refill: %+v", v)
	}
	if src.calls.Load() != 4 {
		t.Fatalf("%d calls", src.calls.Load())
	}
}

// multiCallSource asks its vendor once per mapping, as the Digital
// Downloads, AppTrovo and Gumroad adapters do, through its Client.
type multiCallSource struct {
	url      string
	mappings int
	client   Client
}

func (s *multiCallSource) Name() string                          { return "multi" }
func (s *multiCallSource) CanonicalKey(k string) (string, error) { return k, nil }
func (s *multiCallSource) Verify(ctx context.Context, _ Request) Verdict {
	for i := 0; i < s.mappings; i++ {
		req, _ := http.NewRequest(http.MethodGet, s.url, nil)
		if _, err := s.client.Do(ctx, req); err != nil {
			return UnknownVerdict(err)
		}
	}
	return InvalidVerdict(NotFound)
}

func TestRateBudgetCountsEveryRequest(t *testing.T) {
	var hits atomic.Int64
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer vendor.Close()
	clock := newFakeClock()
	src := &multiCallSource{url: vendor.URL, mappings: 3}
	var unknowns atomic.Int64
	r, err := BuildResilient(ResilienceConfig{Clock: clock, Rate: Rate{Calls: 4, Period: time.Minute}, Burst: 4, MaxWait: time.Second,
		BreakerThreshold: 1, BreakerCooldown: time.Hour, OnUnknown: func(string, error) { unknowns.Add(1) }},
		func(c Client) (Source, error) { src.client = c; return src, nil })
	if err != nil {
		t.Fatal(err)
	}
	if v := r.Verify(context.Background(), Request{Key: "a"}); v.Outcome != Invalid {
		t.Fatalf("first question, 3 requests within a budget of 4: %+v", v)
	}
	v := r.Verify(context.Background(), Request{Key: "b"})
	if v.Outcome != Unknown || !errors.Is(v.Cause, ErrRateBudget) || v.RetryAfter < 10*time.Second {
		t.Fatalf("second question with 1 call left: %+v", v)
	}
	if n := hits.Load(); n != 4 {
		t.Fatalf("%d requests reached the vendor, budget 4 (no retry of a spent budget)", n)
	}
	if n := r.Budget().Spent(); n != 4 {
		t.Fatalf("Budget().Spent() = %d, want the 4 requests made", n)
	}
	if n := r.Calls(); n != 2 {
		t.Fatalf("Calls() = %d, want the 2 questions asked", n)
	}
	// Our own budget is not the source failing: no breaker, no alert.
	if n := unknowns.Load(); n != 0 {
		t.Fatalf("a spent budget was reported as %d unusable answers", n)
	}
	clock.Advance(time.Minute)
	if v := r.Verify(context.Background(), Request{Key: "c"}); v.Outcome != Invalid {
		t.Fatalf("after the refill: %+v (the breaker opened on a spent budget?)", v)
	}
}

// stuckSource holds every call until release is closed, whatever its
// context says (an adapter that ignores cancellation).
type stuckSource struct {
	calls   atomic.Int64
	release chan struct{}
}

func (s *stuckSource) Name() string                          { return "stuck" }
func (s *stuckSource) CanonicalKey(k string) (string, error) { return k, nil }
func (s *stuckSource) Verify(context.Context, Request) Verdict {
	s.calls.Add(1)
	<-s.release
	return valid()
}

// verifyWithin runs r.Verify, failing the test if it panics or takes longer
// than d.
func verifyWithin(t *testing.T, r *Resilient, ctx context.Context, req Request, d time.Duration) Verdict {
	t.Helper()
	done := make(chan Verdict, 1)
	panicked := make(chan any, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				panicked <- p
			}
		}()
		done <- r.Verify(ctx, req)
	}()
	select {
	case v := <-done:
		return v
	case p := <-panicked:
		t.Fatalf("Verify panicked: %v", p)
	case <-time.After(d):
		t.Fatalf("Verify still waiting after %v", d)
	}
	return Verdict{}
}

func waitCalls(t *testing.T, calls func() int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for calls() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream calls, want %d", calls(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCallerDeadlineEndsItsWaitNotTheSharedCall(t *testing.T) {
	src := &scriptedSource{gate: make(chan struct{}), verdict: valid}
	defer func() {
		select {
		case <-src.gate:
		default:
			close(src.gate)
		}
	}()
	r := NewResilient(src, ResilienceConfig{Timeout: 5 * time.Second, Retries: -1})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	hurried := make(chan Verdict, 1)
	start := time.Now()
	go func() { hurried <- r.Verify(ctx, Request{Key: "k"}) }()
	waitCalls(t, src.calls.Load, 1)
	// A patient caller joins the same flight.
	patient := make(chan Verdict, 1)
	go func() { patient <- r.Verify(context.Background(), Request{Key: "k"}) }()

	select {
	case v := <-hurried:
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Fatalf("a caller with a 50ms deadline waited %v", elapsed)
		}
		if v.Outcome != Unknown || !errors.Is(v.Cause, context.DeadlineExceeded) {
			t.Fatalf("caller past its deadline: %+v, want Unknown with its context's error", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a caller with a 50ms deadline still waiting after 2s")
	}
	// The hurried caller leaving did not cancel the call for the other.
	time.Sleep(20 * time.Millisecond)
	close(src.gate)
	select {
	case v := <-patient:
		if v.Outcome != Valid {
			t.Fatalf("the remaining caller got %+v, want Valid", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the remaining caller got no answer")
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("%d upstream calls, want 1 shared call", got)
	}
}

func TestSharedCallHasItsOwnDeadline(t *testing.T) {
	src := &stuckSource{release: make(chan struct{})}
	defer close(src.release)
	// One slot, held by a call that never ends: the next question's wait
	// for the slot must end with the shared call's deadline, here
	// (Retries+1)*(Timeout+MaxWait) = 100ms, though its caller has none.
	r := NewResilient(src, ResilienceConfig{Concurrency: 1, Timeout: 50 * time.Millisecond, MaxWait: 50 * time.Millisecond, Retries: -1})
	go r.Verify(context.Background(), Request{Key: "a"})
	waitCalls(t, src.calls.Load, 1)
	v := verifyWithin(t, r, context.Background(), Request{Key: "b"}, 2*time.Second)
	if v.Outcome != Unknown || !errors.Is(v.Cause, context.DeadlineExceeded) {
		t.Fatalf("question waiting for a slot: %+v, want Unknown past its deadline", v)
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("%d upstream calls, want 1", got)
	}
}

func TestPanicReleasesSlotAndTrial(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: func() Verdict { panic("adapter bug") }}
	r := NewResilient(src, ResilienceConfig{Clock: clock, Concurrency: 1, Retries: 2, BreakerThreshold: 1, BreakerCooldown: time.Minute, NegativeTTL: -1})
	v := verifyWithin(t, r, context.Background(), Request{Key: "k"}, 2*time.Second)
	if v.Outcome != Unknown || v.Cause == nil || !strings.Contains(v.Cause.Error(), "fake: internal error") {
		t.Fatalf("panicking source: %+v, want Unknown naming the source", v)
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("a panic was retried: %d calls", got)
	}
	// The panic counted as a failure and opened the breaker; the trial
	// after the cooldown panics too, and must not wedge it.
	clock.Advance(time.Minute)
	if v := verifyWithin(t, r, context.Background(), Request{Key: "k"}, 2*time.Second); v.Outcome != Unknown || src.calls.Load() != 2 {
		t.Fatalf("trial call: %+v, %d calls", v, src.calls.Load())
	}
	clock.Advance(time.Minute)
	src.set(valid)
	if v := verifyWithin(t, r, context.Background(), Request{Key: "k"}, 2*time.Second); v.Outcome != Valid {
		t.Fatalf("after a panicking trial: %+v, want Valid", v)
	}
}

func TestOnUnknownMayUseTheWrapper(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: down}
	var r *Resilient
	var seen atomic.Uint64
	r = NewResilient(src, ResilienceConfig{Clock: clock, Retries: -1, OnUnknown: func(string, error) {
		seen.Store(r.Calls()) // takes the wrapper's lock
	}})
	if v := verifyWithin(t, r, context.Background(), Request{Key: "k"}, 2*time.Second); v.Outcome != Unknown {
		t.Fatalf("%+v", v)
	}
	if seen.Load() != 1 {
		t.Fatalf("OnUnknown saw %d calls, want 1", seen.Load())
	}
}

func TestNegativeCacheEvictsTheOldest(t *testing.T) {
	clock := newFakeClock()
	src := &scriptedSource{verdict: revoked}
	r := NewResilient(src, ResilienceConfig{Clock: clock, NegativeTTL: time.Minute, NegativeSize: 2})
	ask := func(key string) {
		t.Helper()
		if v := r.Verify(context.Background(), Request{Key: key}); v.Outcome != Invalid {
			t.Fatalf("%s: %+v", key, v)
		}
	}
	ask("a")
	clock.Advance(30 * time.Second)
	ask("b")
	clock.Advance(31 * time.Second) // a has expired, b has not
	ask("a")                        // cached again: now the freshest
	ask("c")                        // one too many: b is the oldest
	before := src.calls.Load()
	ask("a")
	if got := src.calls.Load() - before; got != 0 {
		t.Fatalf("the freshest entry was evicted: %d calls", got)
	}
	ask("c")
	if got := src.calls.Load() - before; got != 0 {
		t.Fatalf("the newest entry was evicted: %d calls", got)
	}
	ask("b")
	if got := src.calls.Load() - before; got != 1 {
		t.Fatalf("the oldest entry was kept: %d calls", got)
	}
}

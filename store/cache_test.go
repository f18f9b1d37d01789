package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/store/storetest"
)

// countingStore counts LicenseState calls per licence and can be made to
// fail or to block.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	calls   map[string]int
	fail    error
	failID  string        // when set, only this licence fails
	block   chan struct{} // when set, LicenseState waits for it to close
	entered chan string   // when set, LicenseState reports its licence id
	panics  any           // when set, LicenseState panics with it
}

func (c *countingStore) LicenseState(ctx context.Context, id string) (*store.LicenseState, error) {
	c.mu.Lock()
	c.calls[id]++
	fail, block, entered, panics := c.fail, c.block, c.entered, c.panics
	if c.failID != "" && c.failID != id {
		fail = nil
	}
	c.mu.Unlock()
	if entered != nil {
		entered <- id
	}
	if block != nil {
		<-block
	}
	if panics != nil {
		panic(panics)
	}
	if fail != nil {
		return nil, fail
	}
	// Like a networked store, give up once the caller has.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Store.LicenseState(ctx, id)
}

func (c *countingStore) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func (c *countingStore) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

// blockReads makes reads wait until release is called (at the latest when
// the test ends), each reporting its licence id on entered first.
func (c *countingStore) blockReads(t *testing.T) (entered <-chan string, release func()) {
	block, ent := make(chan struct{}), make(chan string, 16)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.block, c.entered = block, ent
	var once sync.Once
	release = func() { once.Do(func() { close(block) }) }
	t.Cleanup(release)
	return ent, release
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCounting(t *testing.T, licences ...string) *countingStore {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, id := range licences {
		setStatus(t, s, id, store.LicenseActive)
	}
	return &countingStore{Store: s, calls: map[string]int{}}
}

func setStatus(t *testing.T, s store.Store, id, status string) {
	t.Helper()
	_, err := s.UpdateLicense(context.Background(), id, func(st *store.LicenseState) (*store.LicenseState, error) {
		if st.License == nil {
			st.License = &store.License{ID: id}
		}
		st.License.Status = status
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newCache(cs *countingStore, cfg store.CacheConfig) (*store.StateCache, *clock) {
	clk := &clock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
	cfg.Now = clk.Now
	return store.NewStateCache(cs, cfg), clk
}

func mustGet(t *testing.T, c *store.StateCache, id string) *store.LicenseState {
	t.Helper()
	st, stale, err := c.GetStale(context.Background(), id, 0)
	if err != nil || stale {
		t.Fatalf("GetStale(%s) = stale %v, err %v", id, stale, err)
	}
	return st
}

type getResult struct {
	st    *store.LicenseState
	stale bool
	err   error
}

// getAsync runs GetStale in its own goroutine.
func getAsync(c *store.StateCache, id string, maxStale time.Duration) <-chan getResult {
	done := make(chan getResult, 1)
	go func() {
		st, stale, err := c.GetStale(context.Background(), id, maxStale)
		done <- getResult{st, stale, err}
	}()
	return done
}

// getWithin fails unless GetStale returns within a second: it must not
// wait for the store.
func getWithin(t *testing.T, c *store.StateCache, id string, maxStale time.Duration) getResult {
	t.Helper()
	select {
	case r := <-getAsync(c, id, maxStale):
		return r
	case <-time.After(time.Second):
		t.Fatalf("GetStale(%s) waited for the store", id)
		return getResult{}
	}
}

func receive(t *testing.T, entered <-chan string, what string) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no store read started", what)
	}
}

// awaitRefreshed waits for a background refresh of id to replace old (the
// state the cache returned when it started it). The lookups it makes while
// the refresh runs join it rather than starting another; it returns their
// number (each counts as a hit) and the new state.
func awaitRefreshed(t *testing.T, c *store.StateCache, id string, old *store.LicenseState) (*store.LicenseState, uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n := uint64(1); ; n++ {
		if st := mustGet(t, c, id); st != old {
			return st, n
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refresh of %s never landed", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitFailure waits for a background refresh of id to fail: a caller with
// a wide stale window is then answered stale from the remembered failure
// (and, while it runs, joins it rather than starting another).
func awaitFailure(t *testing.T, c *store.StateCache, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, stale, err := c.GetStale(context.Background(), id, 24*time.Hour)
		if err != nil || st == nil {
			t.Fatalf("GetStale(%s) with a wide window = %v, %v", id, st, err)
		}
		if stale && !c.Fetching(id) { // stale because the fetch failed, not because it runs
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refresh of %s never failed", id)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheTTLAndInvalidate(t *testing.T) {
	ctx := context.Background()
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: 10 * time.Second})

	var polls uint64 // lookups made waiting for the background refresh
	steps := []struct {
		name       string
		before     func()
		background bool // the lookup answers from the cache and refreshes it
		wantCalls  int
	}{
		{"first get fetches", nil, false, 1},
		{"second get within TTL is cached", func() { clk.Advance(5 * time.Second) }, false, 1},
		{"just before TTL still cached", func() { clk.Advance(5*time.Second - time.Nanosecond) }, false, 1},
		{"at TTL refetches in the background", func() { clk.Advance(time.Nanosecond) }, true, 2},
		{"fresh again", func() { clk.Advance(time.Second) }, false, 2},
		{"invalidate forces a refetch", func() { c.Invalidate("lic_1") }, false, 3},
		{"invalidating another licence changes nothing", func() { c.Invalidate("lic_2") }, false, 3},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		got := mustGet(t, c, "lic_1")
		if got.License == nil || got.License.ID != "lic_1" {
			t.Fatalf("%s: state %+v", st.name, got)
		}
		if st.background {
			_, n := awaitRefreshed(t, c, "lic_1", got)
			polls += n
		}
		if n := cs.count("lic_1"); n != st.wantCalls {
			t.Fatalf("%s: %d store calls, want %d", st.name, n, st.wantCalls)
		}
	}
	hits, misses := c.Stats()
	if hits != 5+polls || misses != 2 {
		t.Fatalf("Stats = %d hits, %d misses; want %d, 2", hits, misses, 5+polls)
	}

	// A refetch after invalidation sees the store's new contents.
	setStatus(t, cs, "lic_1", store.LicenseSuspended)
	if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseActive {
		t.Fatalf("cached status %s, want the cached active (no change notice)", got.License.Status)
	}
	c.Invalidate("lic_1")
	if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseSuspended {
		t.Fatalf("status after invalidate %s, want suspended", got.License.Status)
	}

	// A licence the store does not hold is cached as such.
	for i := 0; i < 2; i++ {
		st, _, err := c.GetStale(ctx, "lic_unknown", 0)
		if err != nil || st.License != nil {
			t.Fatalf("unknown licence = %+v, %v", st, err)
		}
	}
	if n := cs.count("lic_unknown"); n != 1 {
		t.Fatalf("unknown licence fetched %d times, want 1", n)
	}
}

func TestCacheDefaults(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c := store.NewStateCache(cs, store.CacheConfig{})
	mustGet(t, c, "lic_1")
	mustGet(t, c, "lic_1")
	if n := cs.count("lic_1"); n != 1 {
		t.Fatalf("default TTL: %d store calls, want 1", n)
	}
}

func TestCacheLRU(t *testing.T) {
	cs := newCounting(t, "a", "b", "c", "d")
	c, _ := newCache(cs, store.CacheConfig{Size: 2, TTL: time.Hour})

	mustGet(t, c, "a")
	mustGet(t, c, "b")
	mustGet(t, c, "a") // a is now the most recently used
	mustGet(t, c, "c") // evicts b
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want the bound 2", c.Len())
	}
	mustGet(t, c, "a")
	if n := cs.count("a"); n != 1 {
		t.Fatalf("a fetched %d times: the recently used entry was evicted", n)
	}
	mustGet(t, c, "b")
	if n := cs.count("b"); n != 2 {
		t.Fatalf("b fetched %d times, want 2: the least recently used entry was kept", n)
	}
	// Now b and a are held, c was least recently used.
	mustGet(t, c, "d")
	mustGet(t, c, "b")
	if n := cs.count("b"); n != 2 {
		t.Fatalf("b evicted although a was older")
	}
	mustGet(t, c, "c")
	if n := cs.count("c"); n != 2 {
		t.Fatalf("c fetched %d times, want 2", n)
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}

	many, _ := newCache(cs, store.CacheConfig{Size: 3, TTL: time.Hour})
	for i := 0; i < 50; i++ {
		mustGet(t, many, fmt.Sprint("lic_", i))
		if many.Len() > 3 {
			t.Fatalf("Len = %d after %d licences, bound is 3", many.Len(), i+1)
		}
	}

	// Failed fetches are remembered per licence, within the same bound.
	cs.setFail(errors.New("connection refused"))
	for i := 0; i < 50; i++ {
		if _, _, err := many.GetStale(context.Background(), fmt.Sprint("lic_failing_", i), 0); err == nil {
			t.Fatal("GetStale = nil error from a failing store")
		}
		if many.Len() > 3 {
			t.Fatalf("Len = %d after %d failed licences, bound is 3", many.Len(), i+1)
		}
	}
}

func TestCacheDoesNotAskAFailedStoreOnEveryRequest(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second})
	mustGet(t, c, "lic_1")
	cs.setFail(errors.New("connection refused"))
	clk.Advance(2 * time.Second)
	before := cs.count("lic_1")
	for i := 0; i < 10; i++ {
		if _, isStale, err := c.GetStale(context.Background(), "lic_1", time.Minute); err != nil || !isStale {
			t.Fatalf("GetStale %d: stale %v, %v", i, isStale, err)
		}
	}
	if n := cs.count("lic_1") - before; n != 1 {
		t.Fatalf("%d store reads for 10 requests during an outage, want 1", n)
	}
	if _, _, err := c.GetStale(context.Background(), "lic_1", 0); err == nil {
		t.Fatal("GetStale with no stale window served a stale entry")
	}
}

func TestCacheFailureBackoffIsPerLicence(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"corrupt record", errors.New("decoding licence lic_bad: unexpected end of JSON input")},
		{"its shard is down", fmt.Errorf("reading licence: %w: CLUSTERDOWN", store.ErrUnavailable)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1", "lic_2", "lic_bad")
			c, clk := newCache(cs, store.CacheConfig{TTL: 10 * time.Second})
			cached := mustGet(t, c, "lic_2")
			clk.Advance(10 * time.Second) // lic_2 is due a refetch
			cs.mu.Lock()
			cs.fail, cs.failID = tc.err, "lic_bad"
			cs.mu.Unlock()

			if _, _, err := c.GetStale(ctx, "lic_bad", time.Minute); !errors.Is(err, tc.err) {
				t.Fatalf("GetStale(lic_bad) = %v, want %v", err, tc.err)
			}
			// Other licences are still read from the store, whether never
			// cached or due a refetch, and not answered with lic_bad's error.
			mustGet(t, c, "lic_1")
			if st := mustGet(t, c, "lic_2"); st != cached {
				t.Fatal("lic_2 not answered from the cache while it is refreshed")
			}
			awaitRefreshed(t, c, "lic_2", cached)
			if n := cs.count("lic_2"); n != 2 {
				t.Fatalf("lic_2 read %d times, want 2", n)
			}

			// The failing licence is not asked again within the backoff...
			for i := 0; i < 5; i++ {
				if _, _, err := c.GetStale(ctx, "lic_bad", time.Minute); !errors.Is(err, tc.err) {
					t.Fatalf("GetStale(lic_bad) %d = %v, want %v", i, err, tc.err)
				}
			}
			if n := cs.count("lic_bad"); n != 1 {
				t.Fatalf("lic_bad read %d times within the backoff, want 1", n)
			}
			// ...but is after it.
			clk.Advance(time.Second)
			cs.setFail(nil)
			if st := mustGet(t, c, "lic_bad"); st.License == nil || st.License.ID != "lic_bad" {
				t.Fatalf("lic_bad after the backoff = %+v", st)
			}
			if n := cs.count("lic_bad"); n != 2 {
				t.Fatalf("lic_bad read %d times, want 2", n)
			}
		})
	}

	t.Run("a change notice ends it", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, _ := newCache(cs, store.CacheConfig{TTL: 10 * time.Second})
		cs.setFail(errors.New("decoding licence lic_1: bad record"))
		if _, _, err := c.GetStale(ctx, "lic_1", 0); err == nil {
			t.Fatal("GetStale = nil error from a failing store")
		}
		cs.setFail(nil)
		c.Invalidate("lic_1") // the record was rewritten
		mustGet(t, c, "lic_1")
		if n := cs.count("lic_1"); n != 2 {
			t.Fatalf("lic_1 read %d times, want 2", n)
		}
	})
}

func TestCacheStaleOnStoreError(t *testing.T) {
	ctx := context.Background()
	boom := fmt.Errorf("reading licence: %w: connection refused", store.ErrUnavailable)
	const ttl, stale = 10 * time.Second, time.Minute

	// Below 2*TTL the first lookup is answered from the cache while a
	// background refresh fails; the table gives the answer after that.
	tests := []struct {
		name      string
		stale     time.Duration
		age       time.Duration
		wantStale bool // else the store's error
	}{
		{"just past TTL", stale, ttl, true},
		{"just below twice TTL", stale, 2*ttl - time.Nanosecond, true},
		{"at twice TTL", stale, 2 * ttl, true},
		{"well within stale window", stale, ttl + 30*time.Second, true},
		{"just inside TTL+Stale", stale, ttl + stale - time.Nanosecond, true},
		{"at TTL+Stale", stale, ttl + stale, false},
		{"far past", stale, 24 * time.Hour, false},
		{"no stale window", 0, ttl, false},
		{"no stale window, at twice TTL", 0, 2 * ttl, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
			want := mustGet(t, c, "lic_1")
			cs.setFail(boom)
			clk.Advance(tt.age)
			if tt.age < 2*ttl {
				st, isStale, err := c.GetStale(ctx, "lic_1", tt.stale)
				if err != nil || isStale || st != want {
					t.Fatalf("GetStale while refreshing = %p, stale %v, %v; want the cached %p", st, isStale, err, want)
				}
				awaitFailure(t, c, "lic_1")
			}
			st, isStale, err := c.GetStale(ctx, "lic_1", tt.stale)
			if cs.count("lic_1") != 2 {
				t.Fatalf("store asked %d times, want 2 (a past-TTL entry must be refetched)", cs.count("lic_1"))
			}
			if tt.wantStale {
				if err != nil || !isStale || st != want {
					t.Fatalf("GetStale = %p, stale %v, %v; want the cached %p with stale", st, isStale, err, want)
				}
				return
			}
			if !errors.Is(err, boom) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("GetStale err = %v, want the store's error", err)
			}
			if st != nil || isStale {
				t.Fatalf("GetStale = %+v, stale %v alongside an error", st, isStale)
			}
		})
	}

	t.Run("never cached", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, _ := newCache(cs, store.CacheConfig{TTL: ttl})
		cs.setFail(boom)
		if _, _, err := c.GetStale(ctx, "lic_1", stale); !errors.Is(err, boom) {
			t.Fatalf("GetStale = %v, want the store's error", err)
		}
	})

	t.Run("recovers", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
		mustGet(t, c, "lic_1")
		cs.setFail(boom)
		clk.Advance(ttl)
		mustGet(t, c, "lic_1") // starts a refresh, which fails
		awaitFailure(t, c, "lic_1")
		if _, isStale, _ := c.GetStale(ctx, "lic_1", stale); !isStale {
			t.Fatal("want a stale answer while the store is down")
		}
		cs.setFail(nil)
		clk.Advance(time.Second) // a failed store is asked again after failureBackoff
		setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
		if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseSuspended {
			t.Fatalf("status %s after recovery, want suspended", got.License.Status)
		}
		// And the refetched entry is fresh again.
		before := cs.count("lic_1")
		mustGet(t, c, "lic_1")
		if cs.count("lic_1") != before {
			t.Fatal("entry fetched after recovery is not cached")
		}
	})

	t.Run("invalidated entry is not served stale", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, _ := newCache(cs, store.CacheConfig{TTL: ttl})
		mustGet(t, c, "lic_1")
		c.Invalidate("lic_1") // e.g. a suspension was announced
		cs.setFail(boom)
		if _, _, err := c.GetStale(ctx, "lic_1", stale); !errors.Is(err, boom) {
			t.Fatalf("GetStale = %v, want the store's error rather than a state known to be outdated", err)
		}
	})
}

func TestCacheRevalidatesInTheBackground(t *testing.T) {
	const ttl = 10 * time.Second
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
	cached := mustGet(t, c, "lic_1")
	clk.Advance(ttl + time.Second)
	entered, release := cs.blockReads(t)

	// Answered from the cache while the store is still blocked, by however
	// many requests, with one store read between them.
	for i := 0; i < 5; i++ {
		r := getWithin(t, c, "lic_1", 0)
		if r.err != nil || r.stale || r.st != cached {
			t.Fatalf("GetStale %d = %p, stale %v, %v; want the cached %p", i, r.st, r.stale, r.err, cached)
		}
	}
	receive(t, entered, "background refresh")
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store reads, want 2: one refresh per licence", n)
	}

	setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
	release()
	st, _ := awaitRefreshed(t, c, "lic_1", cached)
	if st.License.Status != store.LicenseSuspended {
		t.Fatalf("status %s after the refresh, want suspended", st.License.Status)
	}
	if r := getWithin(t, c, "lic_1", 0); r.err != nil || r.stale || r.st != st {
		t.Fatalf("GetStale after the refresh = %+v, want the refreshed state", r)
	}
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store reads, want 2: the refreshed entry is fresh", n)
	}
}

func TestCacheBackgroundRefreshOutlivesTheRequest(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second})
	cached := mustGet(t, c, "lic_1")
	clk.Advance(time.Second)
	entered, release := cs.blockReads(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := c.GetStale(ctx, "lic_1", 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("GetStale waited for the store")
	}
	receive(t, entered, "background refresh")
	cancel() // the request is over; its refresh is not
	release()
	awaitRefreshed(t, c, "lic_1", cached)
	if _, isStale, err := c.GetStale(context.Background(), "lic_1", time.Hour); err != nil || isStale {
		t.Fatalf("after the refresh: stale %v, %v; want it cached as fresh", isStale, err)
	}
}

func TestCacheSynchronousPastTwiceTTL(t *testing.T) {
	const ttl = 10 * time.Second
	for _, age := range []time.Duration{2 * ttl, 24 * time.Hour} {
		t.Run(age.String(), func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
			mustGet(t, c, "lic_1")
			setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
			clk.Advance(age)
			// Too old to answer with: this caller waits for the store.
			if st := mustGet(t, c, "lic_1"); st.License.Status != store.LicenseSuspended {
				t.Fatalf("status %s, want the store's suspended", st.License.Status)
			}
			if n := cs.count("lic_1"); n != 2 {
				t.Fatalf("%d store reads, want 2", n)
			}
		})
	}
}

func TestCacheDoesNotQueueBehindAFetch(t *testing.T) {
	const ttl, maxStale = 10 * time.Second, time.Minute
	boom := fmt.Errorf("reading licence: %w: i/o timeout", store.ErrUnavailable)
	tests := []struct {
		name        string
		secondWaits bool // the store is not known to be down: no stale answer
		setup       func(t *testing.T, cs *countingStore, c *store.StateCache, clk *clock)
	}{
		{"past twice TTL", true, func(t *testing.T, cs *countingStore, c *store.StateCache, clk *clock) {
			clk.Advance(2 * ttl)
		}},
		{"failure remembered, backoff over", false, func(t *testing.T, cs *countingStore, c *store.StateCache, clk *clock) {
			cs.setFail(boom)
			clk.Advance(ttl)
			mustGet(t, c, "lic_1")
			awaitFailure(t, c, "lic_1")
			cs.setFail(nil)
			clk.Advance(time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
			cached := mustGet(t, c, "lic_1")
			tt.setup(t, cs, c, clk)
			reads := cs.count("lic_1")
			entered, release := cs.blockReads(t)

			first := getAsync(c, "lic_1", maxStale)
			receive(t, entered, "first caller")
			var second <-chan getResult
			if tt.secondWaits {
				second = getAsync(c, "lic_1", maxStale)
			} else {
				r := getWithin(t, c, "lic_1", maxStale)
				if r.err != nil || !r.stale || r.st != cached {
					t.Fatalf("second caller = %p, stale %v, %v; want the cached %p with stale", r.st, r.stale, r.err, cached)
				}
			}
			select {
			case r := <-first:
				t.Fatalf("first caller returned %+v before the store answered", r)
			default:
			}
			if second != nil {
				select {
				case r := <-second:
					t.Fatalf("second caller returned %+v before the store answered", r)
				case <-time.After(50 * time.Millisecond):
				}
			}

			setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
			release()
			r := <-first
			if r.err != nil || r.stale || r.st.License.Status != store.LicenseSuspended {
				t.Fatalf("first caller = %+v, want the store's suspended state", r)
			}
			if second != nil {
				if r := <-second; r.err != nil || r.stale || r.st.License.Status != store.LicenseSuspended {
					t.Fatalf("second caller = %+v, want the store's suspended state (an idle entry is not served stale while the store works)", r)
				}
			}
			// A second caller that waits normally shares the first read; on
			// a slow machine it may come after it and read again.
			if n := cs.count("lic_1") - reads; n != 1 && !(tt.secondWaits && n == 2) {
				t.Fatalf("%d store reads for two callers, want 1", n)
			}
		})
	}
}

func TestCacheDenyModeServesOnlyDuringOneRefresh(t *testing.T) {
	ctx := context.Background()
	const ttl = 10 * time.Second
	boom := fmt.Errorf("reading licence: %w: connection refused", store.ErrUnavailable)
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
	cached := mustGet(t, c, "lic_1")
	cs.setFail(boom)
	clk.Advance(ttl)

	// The first request past TTL is answered while the refresh runs...
	if st, isStale, err := c.GetStale(ctx, "lic_1", 0); err != nil || isStale || st != cached {
		t.Fatalf("first GetStale past TTL = %p, stale %v, %v; want the cached %p", st, isStale, err, cached)
	}
	awaitFailure(t, c, "lic_1")
	// ... and once it has failed, the others get the error, without a
	// store read within the backoff ...
	for i := 0; i < 5; i++ {
		if st, _, err := c.GetStale(ctx, "lic_1", 0); !errors.Is(err, boom) || st != nil {
			t.Fatalf("GetStale %d after the failed refresh = %v, %v; want the store's error", i, st, err)
		}
	}
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store reads, want 2", n)
	}
	// ... and after it a synchronous one, not another answer from the
	// cache ...
	clk.Advance(time.Second)
	if _, _, err := c.GetStale(ctx, "lic_1", 0); !errors.Is(err, boom) {
		t.Fatalf("GetStale after the backoff = %v, want the store's error", err)
	}
	if n := cs.count("lic_1"); n != 3 {
		t.Fatalf("%d store reads, want 3", n)
	}
	// ... until the store recovers.
	cs.setFail(nil)
	setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
	if _, _, err := c.GetStale(ctx, "lic_1", 0); !errors.Is(err, boom) {
		t.Fatalf("GetStale within the backoff = %v, want the remembered error", err)
	}
	clk.Advance(time.Second)
	if st := mustGet(t, c, "lic_1"); st.License.Status != store.LicenseSuspended {
		t.Fatalf("status %s after recovery, want suspended", st.License.Status)
	}
	mustGet(t, c, "lic_1")
	if n := cs.count("lic_1"); n != 4 {
		t.Fatalf("%d store reads, want 4", n)
	}
}

func TestCacheRefreshPanicIsAFailure(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second})
	cached := mustGet(t, c, "lic_1")
	cs.mu.Lock()
	cs.panics = "decoder bug"
	cs.mu.Unlock()
	clk.Advance(time.Second)
	mustGet(t, c, "lic_1") // a panic in its background refresh must not crash the process
	awaitFailure(t, c, "lic_1")
	clk.Advance(time.Second)
	if _, _, err := c.GetStale(context.Background(), "lic_1", 0); err == nil {
		t.Fatal("GetStale = nil error from a panicking store")
	}
	if st, isStale, err := c.GetStale(context.Background(), "lic_1", time.Minute); err != nil || !isStale || st != cached {
		t.Fatalf("GetStale with a stale window = %p, stale %v, %v; want the cached %p", st, isStale, err, cached)
	}
}

func TestCacheInvalidateDuringFetch(t *testing.T) {
	tests := []struct {
		name         string
		invalidate   func(c *store.StateCache)
		wantOutdated bool // else the fetched state is cached as fresh
	}{
		{"same licence", func(c *store.StateCache) { c.Invalidate("lic_1") }, true},
		{"another licence", func(c *store.StateCache) { c.Invalidate("lic_2") }, false},
		{"all licences", func(c *store.StateCache) { c.InvalidateAll() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1", "lic_2")
			c, _ := newCache(cs, store.CacheConfig{TTL: time.Hour})
			block := make(chan struct{})
			entered := make(chan string, 1)
			cs.mu.Lock()
			cs.block, cs.entered = block, entered
			cs.mu.Unlock()

			var got atomic.Pointer[store.LicenseState]
			done := make(chan error, 1)
			go func() {
				st, _, err := c.GetStale(context.Background(), "lic_1", 0)
				got.Store(st)
				done <- err
			}()
			<-entered
			tt.invalidate(c) // a change is announced while the read is in flight
			cs.mu.Lock()
			cs.block, cs.entered = nil, nil
			cs.mu.Unlock()
			close(block)
			if err := <-done; err != nil || got.Load() == nil {
				t.Fatalf("in-flight GetStale = %v, %v", got.Load(), err)
			}
			// An answer read before a notice about its licence is not
			// trusted for a whole TTL; a notice about another one is no
			// reason to distrust it.
			want := 1
			if tt.wantOutdated {
				want = 2
			}
			mustGet(t, c, "lic_1")
			if n := cs.count("lic_1"); n != want {
				t.Fatalf("%d store calls, want %d (outdated: %v)", n, want, tt.wantOutdated)
			}
			mustGet(t, c, "lic_1")
			if n := cs.count("lic_1"); n != want {
				t.Fatalf("%d store calls, want %d: the refetched entry is not cached", n, want)
			}
		})
	}
}

func TestCacheInvalidateDuringBackgroundRefresh(t *testing.T) {
	const ttl = 10 * time.Second
	for _, tt := range []struct {
		name       string
		invalidate func(c *store.StateCache)
	}{
		{"same licence", func(c *store.StateCache) { c.Invalidate("lic_1") }},
		{"all licences", func(c *store.StateCache) { c.InvalidateAll() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
			mustGet(t, c, "lic_1")
			clk.Advance(ttl)
			entered, release := cs.blockReads(t)
			if r := getWithin(t, c, "lic_1", 0); r.err != nil || r.stale { // starts a refresh
				t.Fatalf("GetStale = %+v", r)
			}
			receive(t, entered, "background refresh")
			tt.invalidate(c) // a change is announced while it runs

			// The dropped entry is not served, even stale: this caller
			// waits for the store.
			waiting := getAsync(c, "lic_1", time.Hour)
			select {
			case r := <-waiting:
				t.Fatalf("GetStale after the notice = %+v before the store answered", r)
			case <-time.After(50 * time.Millisecond):
			}
			release()
			if r := <-waiting; r.err != nil || r.st == nil {
				t.Fatalf("GetStale after the notice = %+v", r)
			}
			// The refresh read before the notice is not cached as fresh:
			// the next lookups read again, once.
			mustGet(t, c, "lic_1")
			mustGet(t, c, "lic_1")
			if n := cs.count("lic_1"); n != 3 {
				t.Fatalf("%d store reads, want 3", n)
			}
			mustGet(t, c, "lic_1")
			if n := cs.count("lic_1"); n != 3 {
				t.Fatalf("%d store reads, want 3: the reread entry is not cached", n)
			}
		})
	}
}

func TestCacheConcurrentGets(t *testing.T) {
	cs := newCounting(t, "lic_1", "lic_2")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second, Size: 1})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				id := []string{"lic_1", "lic_2"}[(i+j)%2]
				st, _, err := c.GetStale(context.Background(), id, time.Minute)
				if err != nil || st.License == nil || st.License.ID != id {
					t.Errorf("GetStale(%s) = %+v, %v", id, st, err)
					return
				}
				if j%10 == 0 {
					c.Invalidate(id)
					clk.Advance(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 1 {
		t.Fatalf("Len = %d, bound is 1", c.Len())
	}
}

func BenchmarkCacheHit(b *testing.B) {
	s, err := embedded.Open(filepath.Join(b.TempDir(), "lg.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := store.NewStateCache(s, store.CacheConfig{TTL: time.Hour})
	ctx := context.Background()
	if _, _, err := c.GetStale(ctx, "lic_1", 0); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.GetStale(ctx, "lic_1", 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// wantGone fails unless r is a gone caller's answer: its context's error,
// not an outage, and no state, stale or not.
func wantGone(t *testing.T, what string, r getResult, want error) {
	t.Helper()
	if !errors.Is(r.err, want) || errors.Is(r.err, store.ErrUnavailable) || r.st != nil || r.stale {
		t.Fatalf("%s = %v, stale %v, %v; want no state and %v, not ErrUnavailable", what, r.st, r.stale, r.err, want)
	}
}

// A caller that goes away while its read waits on the store is told so at
// once, not answered stale; the read goes on for the others and is cached,
// so the next caller gets its state without a failure remembered.
func TestCacheCallerGoneWhileReading(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Minute})
	mustGet(t, c, "lic_1")
	clk.Advance(3 * time.Minute) // past 2*TTL: a read the caller waits for
	entered, release := cs.blockReads(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan getResult, 1)
	go func() {
		st, stale, err := c.GetStale(ctx, "lic_1", time.Hour) // the entry is servable stale
		done <- getResult{st, stale, err}
	}()
	receive(t, entered, "a caller's read")
	cancel()
	select {
	case r := <-done:
		wantGone(t, "GetStale cancelled while reading", r, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("GetStale kept waiting for the store after its caller went away")
	}
	release()

	// The next caller joins that read, or finds its outcome cached: fresh,
	// with no further store read.
	if st, stale, err := c.GetStale(context.Background(), "lic_1", 0); err != nil || stale || st == nil {
		t.Fatalf("GetStale after a caller went away = %v, stale %v, %v; want the fresh state", st, stale, err)
	}
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store reads, want 2 (the first, and the one the gone caller started)", n)
	}
	// Joining the read counts no hit; finding it cached (the read ended
	// between release and this call) counts one: both are right.
	if hits, _ := c.Stats(); hits > 1 {
		t.Fatalf("%d hits, want at most 1", hits)
	}
}

// A caller that has gone already, when the cache holds nothing it may
// answer without the store, gets its context's error, even where a live
// caller would be answered stale, and asks the store nothing: the next
// live caller reads afresh, with no backoff.
func TestCacheCallerGoneBeforeReading(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Minute})
	mustGet(t, c, "lic_1")
	clk.Advance(3 * time.Minute) // past 2*TTL: a live caller would read, or be answered stale
	for _, gone := range storetest.GoneCallers(t) {
		st, stale, err := c.GetStale(gone.Ctx(), "lic_1", time.Hour)
		wantGone(t, "GetStale with a caller "+gone.Name, getResult{st, stale, err}, gone.Want)
	}
	if n := cs.count("lic_1"); n != 1 {
		t.Fatalf("%d store reads, want 1: a gone caller starts none", n)
	}
	if st, stale, err := c.GetStale(context.Background(), "lic_1", time.Hour); err != nil || stale || st == nil {
		t.Fatalf("GetStale after gone callers = %v, stale %v, %v; want a fresh read", st, stale, err)
	}
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store reads, want 2", n)
	}
}

// A read the store gave up because a context ended that is not the
// cache's (the store says "context canceled", not ErrUnavailable) is not
// remembered as a failure: no stale answer, no backoff for the next caller.
func TestCacheStoreCancellationIsNotAFailure(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Minute})
	mustGet(t, c, "lic_1")
	clk.Advance(3 * time.Minute)
	cs.setFail(fmt.Errorf("reading licence: %w", context.Canceled))
	st, stale, err := c.GetStale(context.Background(), "lic_1", time.Hour)
	wantGone(t, "GetStale on a store that reports a cancellation", getResult{st, stale, err}, context.Canceled)
	cs.setFail(nil)
	// Within failureBackoff: a remembered failure would answer this one
	// stale without asking the store.
	if st, stale, err := c.GetStale(context.Background(), "lic_1", time.Hour); err != nil || stale || st == nil {
		t.Fatalf("GetStale after a cancelled read = %v, stale %v, %v; want a fresh read", st, stale, err)
	}
	if n := cs.count("lic_1"); n != 3 {
		t.Fatalf("%d store reads, want 3 (no backoff after a cancelled read)", n)
	}
}

// readThenWait reads a licence, then waits for release before answering:
// a store answer on its way back while a change is committed and announced.
type readThenWait struct {
	store.Store
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (r *readThenWait) LicenseState(ctx context.Context, id string) (*store.LicenseState, error) {
	st, err := r.Store.LicenseState(ctx, id)
	first := false
	r.once.Do(func() { first = true })
	if first {
		close(r.entered)
		<-r.release
	}
	return st, err
}

// A caller that asks after a change was announced is never handed the
// answer of a read that started before it (issue 9, item 9).
func TestCacheReadInFlightDuringAChange(t *testing.T) {
	for _, tt := range []struct {
		name       string
		invalidate func(c *store.StateCache)
	}{
		{"same licence", func(c *store.StateCache) { c.Invalidate("lic_1") }},
		{"all licences", func(c *store.StateCache) { c.InvalidateAll() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			slow := &readThenWait{Store: cs.Store, entered: make(chan struct{}), release: make(chan struct{})}
			c := store.NewStateCache(slow, store.CacheConfig{TTL: time.Hour})
			t.Cleanup(func() {
				select {
				case <-slow.release:
				default:
					close(slow.release)
				}
			})

			before := getAsync(c, "lic_1", 0)
			<-slow.entered // the read has the active state and is on its way back
			setStatus(t, cs.Store, "lic_1", store.LicenseSuspended)
			tt.invalidate(c) // the change notice arrives first

			after := getWithin(t, c, "lic_1", 0)
			if after.err != nil || after.st.License.Status != store.LicenseSuspended {
				t.Fatalf("GetStale after the notice = %+v, want the suspended state", after)
			}
			close(slow.release)
			if r := <-before; r.err != nil || r.st == nil {
				t.Fatalf("GetStale before the notice = %+v", r)
			}
			// The outdated read did not replace the newer entry.
			if st := mustGet(t, c, "lic_1"); st.License.Status != store.LicenseSuspended {
				t.Fatalf("cached status %s after the outdated read returned", st.License.Status)
			}
		})
	}
}

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
)

// countingStore counts LicenseState calls per licence and can be made to
// fail or to block.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	calls   map[string]int
	fail    error
	block   chan struct{} // when set, LicenseState waits for it to close
	entered chan string   // when set, LicenseState reports its licence id
	subbed  chan struct{} // closed on the first Subscribe
	subOnce sync.Once
}

func (c *countingStore) LicenseState(ctx context.Context, id string) (*store.LicenseState, error) {
	c.mu.Lock()
	c.calls[id]++
	fail, block, entered := c.fail, c.block, c.entered
	c.mu.Unlock()
	if entered != nil {
		entered <- id
	}
	if block != nil {
		<-block
	}
	if fail != nil {
		return nil, fail
	}
	return c.Store.LicenseState(ctx, id)
}

func (c *countingStore) Subscribe(ctx context.Context) (<-chan store.Change, error) {
	ch, err := c.Store.Subscribe(ctx)
	c.subOnce.Do(func() { close(c.subbed) })
	return ch, err
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
	return &countingStore{Store: s, calls: map[string]int{}, subbed: make(chan struct{})}
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
	st, stale, err := c.Get(context.Background(), id)
	if err != nil || stale {
		t.Fatalf("Get(%s) = stale %v, err %v", id, stale, err)
	}
	return st
}

func TestCacheTTLAndInvalidate(t *testing.T) {
	ctx := context.Background()
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: 10 * time.Second})

	steps := []struct {
		name      string
		before    func()
		wantCalls int
	}{
		{"first get fetches", nil, 1},
		{"second get within TTL is cached", func() { clk.Advance(5 * time.Second) }, 1},
		{"just before TTL still cached", func() { clk.Advance(5*time.Second - time.Nanosecond) }, 1},
		{"at TTL refetches", func() { clk.Advance(time.Nanosecond) }, 2},
		{"fresh again", func() { clk.Advance(time.Second) }, 2},
		{"invalidate forces a refetch", func() { c.Invalidate("lic_1") }, 3},
		{"invalidating another licence changes nothing", func() { c.Invalidate("lic_2") }, 3},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		got := mustGet(t, c, "lic_1")
		if got.License == nil || got.License.ID != "lic_1" {
			t.Fatalf("%s: state %+v", st.name, got)
		}
		if n := cs.count("lic_1"); n != st.wantCalls {
			t.Fatalf("%s: %d store calls, want %d", st.name, n, st.wantCalls)
		}
	}
	hits, misses := c.Stats()
	if hits != 4 || misses != 3 {
		t.Fatalf("Stats = %d hits, %d misses; want 4, 3", hits, misses)
	}

	// A refetch after invalidation sees the store's new contents.
	setStatus(t, cs, "lic_1", store.LicenseSuspended)
	if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseActive {
		t.Fatalf("cached status %s, want the cached active (no Follow running)", got.License.Status)
	}
	c.Invalidate("lic_1")
	if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseSuspended {
		t.Fatalf("status after invalidate %s, want suspended", got.License.Status)
	}

	// A licence the store does not hold is cached as such.
	for i := 0; i < 2; i++ {
		st, _, err := c.Get(ctx, "lic_unknown")
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheFollow(t *testing.T) {
	cs := newCounting(t, "lic_1", "lic_2")
	c, _ := newCache(cs, store.CacheConfig{TTL: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Follow(ctx) }()
	<-cs.subbed

	mustGet(t, c, "lic_1")
	mustGet(t, c, "lic_2")
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}

	setStatus(t, cs, "lic_1", store.LicenseSuspended)
	waitFor(t, "the change notice to drop lic_1", func() bool { return c.Len() == 1 })

	if got := mustGet(t, c, "lic_1"); got.License.Status != store.LicenseSuspended {
		t.Fatalf("status %s after the change, want suspended", got.License.Status)
	}
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("lic_1 fetched %d times, want 2", n)
	}
	mustGet(t, c, "lic_2")
	if n := cs.count("lic_2"); n != 1 {
		t.Fatalf("lic_2 refetched (%d calls) although it did not change", n)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after ctx was cancelled")
	}
}

func TestCacheFollowSubscribeError(t *testing.T) {
	boom := errors.New("no pub/sub")
	c := store.NewStateCache(failingSubscribe{newCounting(t), boom}, store.CacheConfig{})
	if err := c.Follow(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Follow = %v, want %v", err, boom)
	}
}

type failingSubscribe struct {
	*countingStore
	err error
}

func (f failingSubscribe) Subscribe(context.Context) (<-chan store.Change, error) { return nil, f.err }

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
}

func TestCacheDoesNotAskAFailedStoreOnEveryRequest(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second, Stale: time.Minute})
	mustGet(t, c, "lic_1")
	cs.setFail(errors.New("connection refused"))
	clk.Advance(2 * time.Second)
	before := cs.count("lic_1")
	for i := 0; i < 10; i++ {
		if _, isStale, err := c.Get(context.Background(), "lic_1"); err != nil || !isStale {
			t.Fatalf("Get %d: stale %v, %v", i, isStale, err)
		}
	}
	if n := cs.count("lic_1") - before; n != 1 {
		t.Fatalf("%d store reads for 10 requests during an outage, want 1", n)
	}
	if _, _, err := c.GetStale(context.Background(), "lic_1", 0); err == nil {
		t.Fatal("GetStale with no stale window served a stale entry")
	}
}

func TestCacheStaleOnStoreError(t *testing.T) {
	ctx := context.Background()
	boom := fmt.Errorf("reading licence: %w: connection refused", store.ErrUnavailable)
	const ttl, stale = 10 * time.Second, time.Minute

	tests := []struct {
		name      string
		stale     time.Duration
		age       time.Duration
		wantStale bool // else the store's error
	}{
		{"just past TTL", stale, ttl, true},
		{"well within stale window", stale, ttl + 30*time.Second, true},
		{"just inside TTL+Stale", stale, ttl + stale - time.Nanosecond, true},
		{"at TTL+Stale", stale, ttl + stale, false},
		{"far past", stale, 24 * time.Hour, false},
		{"no stale window", 0, ttl, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newCounting(t, "lic_1")
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl, Stale: tt.stale})
			want := mustGet(t, c, "lic_1")
			cs.setFail(boom)
			clk.Advance(tt.age)
			st, isStale, err := c.Get(ctx, "lic_1")
			if cs.count("lic_1") != 2 {
				t.Fatalf("store asked %d times, want 2 (a past-TTL entry must be refetched)", cs.count("lic_1"))
			}
			if tt.wantStale {
				if err != nil || !isStale || st != want {
					t.Fatalf("Get = %p, stale %v, %v; want the cached %p with stale", st, isStale, err, want)
				}
				return
			}
			if !errors.Is(err, boom) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Get err = %v, want the store's error", err)
			}
			if st != nil || isStale {
				t.Fatalf("Get = %+v, stale %v alongside an error", st, isStale)
			}
		})
	}

	t.Run("never cached", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, _ := newCache(cs, store.CacheConfig{TTL: ttl, Stale: stale})
		cs.setFail(boom)
		if _, _, err := c.Get(ctx, "lic_1"); !errors.Is(err, boom) {
			t.Fatalf("Get = %v, want the store's error", err)
		}
	})

	t.Run("recovers", func(t *testing.T) {
		cs := newCounting(t, "lic_1")
		c, clk := newCache(cs, store.CacheConfig{TTL: ttl, Stale: stale})
		mustGet(t, c, "lic_1")
		cs.setFail(boom)
		clk.Advance(ttl)
		if _, isStale, _ := c.Get(ctx, "lic_1"); !isStale {
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
		c, _ := newCache(cs, store.CacheConfig{TTL: ttl, Stale: stale})
		mustGet(t, c, "lic_1")
		c.Invalidate("lic_1") // e.g. a suspension was announced
		cs.setFail(boom)
		if _, _, err := c.Get(ctx, "lic_1"); !errors.Is(err, boom) {
			t.Fatalf("Get = %v, want the store's error rather than a state known to be outdated", err)
		}
	})
}

func TestCacheInvalidateDuringFetch(t *testing.T) {
	cs := newCounting(t, "lic_1")
	c, _ := newCache(cs, store.CacheConfig{TTL: time.Hour})
	block := make(chan struct{})
	entered := make(chan string, 1)
	cs.mu.Lock()
	cs.block, cs.entered = block, entered
	cs.mu.Unlock()

	var got atomic.Pointer[store.LicenseState]
	done := make(chan error, 1)
	go func() {
		st, _, err := c.Get(context.Background(), "lic_1")
		got.Store(st)
		done <- err
	}()
	<-entered
	c.Invalidate("lic_1") // a change is announced while the read is in flight
	cs.mu.Lock()
	cs.block, cs.entered = nil, nil
	cs.mu.Unlock()
	close(block)
	if err := <-done; err != nil || got.Load() == nil {
		t.Fatalf("in-flight Get = %v, %v", got.Load(), err)
	}
	// The answer read before the notice is not trusted for a whole TTL.
	mustGet(t, c, "lic_1")
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store calls, want 2: a fetch that raced an invalidation was cached as fresh", n)
	}
	mustGet(t, c, "lic_1")
	if n := cs.count("lic_1"); n != 2 {
		t.Fatalf("%d store calls, want 2: the refetched entry is not cached", n)
	}
}

func TestCacheConcurrentGets(t *testing.T) {
	cs := newCounting(t, "lic_1", "lic_2")
	c, clk := newCache(cs, store.CacheConfig{TTL: time.Second, Stale: time.Minute, Size: 1})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				id := []string{"lic_1", "lic_2"}[(i+j)%2]
				st, _, err := c.Get(context.Background(), id)
				if err != nil || st.License == nil || st.License.ID != id {
					t.Errorf("Get(%s) = %+v, %v", id, st, err)
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

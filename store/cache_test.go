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
	failID  string        // when set, only this licence fails
	block   chan struct{} // when set, LicenseState waits for it to close
	entered chan string   // when set, LicenseState reports its licence id
}

func (c *countingStore) LicenseState(ctx context.Context, id string) (*store.LicenseState, error) {
	c.mu.Lock()
	c.calls[id]++
	fail, block, entered := c.fail, c.block, c.entered
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
	if fail != nil {
		return nil, fail
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
			mustGet(t, c, "lic_2")
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
			mustGet(t, c, "lic_2")
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
			c, clk := newCache(cs, store.CacheConfig{TTL: ttl})
			want := mustGet(t, c, "lic_1")
			cs.setFail(boom)
			clk.Advance(tt.age)
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

package store

import (
	"container/list"
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// fetchTimeout bounds one store read made for the cache.
const fetchTimeout = 5 * time.Second

// CacheConfig tunes a StateCache.
type CacheConfig struct {
	// Size bounds the number of licences held (default 100000).
	Size int
	// TTL is how long an entry is served without asking the store again; it
	// bounds how long a lost change notice can go unnoticed (default 30s).
	TTL time.Duration
	// Stale is how long past TTL an entry may still be served by Get while
	// the store is unreachable (0: never); GetStale takes it per call.
	Stale time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// StateCache is a bounded, in-process cache of licence states in front of a
// Store, kept fresh by the store's change feed: the gate's request path
// reads it and does no I/O in steady state.
type StateCache struct {
	store Store
	cfg   CacheConfig
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     *list.List // front: most recently used

	hits, misses uint64
	// epoch counts invalidations, so a fetch that raced with one is not
	// cached as fresh.
	epoch uint64
	// downUntil and lastErr remember a failed fetch for failureBackoff.
	downUntil time.Time
	lastErr   error
}

type cacheEntry struct {
	id        string
	state     *LicenseState
	fetchedAt time.Time
}

// NewStateCache returns an empty cache over s.
func NewStateCache(s Store, cfg CacheConfig) *StateCache {
	if cfg.Size <= 0 {
		cfg.Size = 100000
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &StateCache{store: s, cfg: cfg, entries: make(map[string]*list.Element), lru: list.New()}
}

// Get returns the licence's state, from the cache when fresh. When the
// store fails and an entry younger than TTL+Stale exists, that entry is
// returned with stale set; otherwise the store's error.
func (c *StateCache) Get(ctx context.Context, licenseID string) (st *LicenseState, stale bool, err error) {
	return c.GetStale(ctx, licenseID, c.cfg.Stale)
}

// failureBackoff is how long after a failed fetch the cache answers from
// what it has without asking the store again, so an outage does not add
// a store timeout to every request.
const failureBackoff = time.Second

// GetStale is Get with the stale window given by the caller (the gate's
// on_store_error).
func (c *StateCache) GetStale(ctx context.Context, licenseID string, maxStale time.Duration) (st *LicenseState, stale bool, err error) {
	now := c.cfg.Now()
	cached, fetchedAt, ok := c.peek(licenseID)
	c.mu.Lock()
	if ok && now.Sub(fetchedAt) < c.cfg.TTL {
		c.hits++
		c.mu.Unlock()
		return cached, false, nil
	}
	c.misses++
	down, lastErr := now.Before(c.downUntil), c.lastErr
	c.mu.Unlock()
	if down {
		if ok && now.Sub(fetchedAt) < c.cfg.TTL+maxStale {
			return cached, true, nil
		}
		return nil, false, lastErr
	}
	v, err, _ := c.group.Do(licenseID, func() (any, error) {
		c.mu.Lock()
		epoch := c.epoch
		c.mu.Unlock()
		// Callers share this fetch: one of them going away must not fail it
		// for the others.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		st, err := c.store.LicenseState(fctx, licenseID)
		if err != nil {
			c.mu.Lock()
			c.downUntil, c.lastErr = c.cfg.Now().Add(failureBackoff), err
			c.mu.Unlock()
			return nil, err
		}
		c.put(licenseID, st, now, epoch)
		return st, nil
	})
	if err != nil {
		if ok && now.Sub(fetchedAt) < c.cfg.TTL+maxStale {
			return cached, true, nil
		}
		return nil, false, err
	}
	return v.(*LicenseState), false, nil
}

func (c *StateCache) peek(id string) (*LicenseState, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return nil, time.Time{}, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	return e.state, e.fetchedAt, true
}

func (c *StateCache) put(id string, st *LicenseState, at time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		at = time.Time{} // a change was announced meanwhile: serve once, refetch next time
	}
	if el, ok := c.entries[id]; ok {
		el.Value = &cacheEntry{id: id, state: st, fetchedAt: at}
		c.lru.MoveToFront(el)
		return
	}
	c.entries[id] = c.lru.PushFront(&cacheEntry{id: id, state: st, fetchedAt: at})
	for c.lru.Len() > c.cfg.Size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).id)
	}
}

// Invalidate drops a licence's entry.
func (c *StateCache) Invalidate(licenseID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if el, ok := c.entries[licenseID]; ok {
		c.lru.Remove(el)
		delete(c.entries, licenseID)
	}
}

// InvalidateAll drops every entry (after a gap in the change feed).
func (c *StateCache) InvalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.entries = make(map[string]*list.Element)
	c.lru.Init()
}

// Len returns the number of cached licences.
func (c *StateCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Stats returns lookups served from the cache and those that were not.
func (c *StateCache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Follow drops entries as the store announces changes, until ctx ends.
func (c *StateCache) Follow(ctx context.Context) error {
	changes, err := c.store.Subscribe(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch, ok := <-changes:
			if !ok {
				return nil
			}
			if ch.Resync {
				c.InvalidateAll()
			}
			c.Invalidate(ch.LicenseID)
		}
	}
}

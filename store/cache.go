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

// failureBackoff is how long after a failed fetch of a licence the cache
// answers for that licence from what it has without asking the store
// again, so an outage does not add a store timeout to every request.
const failureBackoff = time.Second

// CacheConfig tunes a StateCache.
type CacheConfig struct {
	// Size bounds the number of licences held (default 100000).
	Size int
	// TTL is how long an entry is served without asking the store again; it
	// bounds how long a lost change notice can go unnoticed (default 30s).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// StateCache is a bounded, in-process cache of licence states in front of a
// Store, kept fresh by the store's change feed (the caller passes its
// notices to Invalidate and InvalidateAll): the gate's request path reads
// it and does no I/O in steady state.
type StateCache struct {
	store Store
	cfg   CacheConfig
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	lru     *list.List               // front: most recently used

	hits, misses uint64
	// fetching holds the licences being read from the store, each marked
	// true once a change to it was announced meanwhile, so that read is not
	// cached as fresh. At most one fetch per licence runs (singleflight), so
	// it is bounded by the fetches in flight.
	fetching map[string]bool
}

// cacheEntry is immutable once in the LRU list: changes replace it.
type cacheEntry struct {
	id string
	// state is nil while no fetch of the licence has succeeded since it was
	// last invalidated or evicted.
	state     *LicenseState
	fetchedAt time.Time
	// retryAt and err remember this licence's last failed fetch: until
	// retryAt, the store is not asked again for it.
	retryAt time.Time
	err     error
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
	return &StateCache{
		store: s, cfg: cfg,
		entries: make(map[string]*list.Element), lru: list.New(),
		fetching: make(map[string]bool),
	}
}

// GetStale returns the licence's state, from the cache when fresh (younger
// than TTL). When the store fails, or failed for this licence less than a
// second ago, and an entry younger than TTL+maxStale exists, that entry is
// returned with stale set; otherwise the store's error. maxStale is the
// caller's window (the gate's on_store_error; 0: never stale).
//
// The returned state is shared with the cache and other callers: it must
// not be modified.
func (c *StateCache) GetStale(ctx context.Context, licenseID string, maxStale time.Duration) (st *LicenseState, stale bool, err error) {
	now := c.cfg.Now()
	var e cacheEntry
	c.mu.Lock()
	if el, ok := c.entries[licenseID]; ok {
		c.lru.MoveToFront(el)
		e = *el.Value.(*cacheEntry)
	}
	if e.state != nil && now.Sub(e.fetchedAt) < c.cfg.TTL {
		c.hits++
		c.mu.Unlock()
		return e.state, false, nil
	}
	c.misses++
	c.mu.Unlock()

	servable := e.state != nil && now.Sub(e.fetchedAt) < c.cfg.TTL+maxStale
	if now.Before(e.retryAt) {
		if servable {
			return e.state, true, nil
		}
		return nil, false, e.err
	}
	v, err, _ := c.group.Do(licenseID, func() (any, error) {
		return c.fetch(ctx, licenseID, now)
	})
	if err != nil {
		if servable {
			return e.state, true, nil
		}
		return nil, false, err
	}
	return v.(*LicenseState), false, nil
}

// fetch reads a licence from the store and caches the outcome: the state
// as fetched at now, or the failure alongside what was cached before.
func (c *StateCache) fetch(ctx context.Context, id string, now time.Time) (*LicenseState, error) {
	c.mu.Lock()
	c.fetching[id] = false
	c.mu.Unlock()
	// Callers share this fetch: one of them going away must not fail it
	// for the others.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	st, err := c.store.LicenseState(fctx, id)

	c.mu.Lock()
	defer c.mu.Unlock()
	outdated := c.fetching[id]
	delete(c.fetching, id)
	e := &cacheEntry{id: id, state: st, fetchedAt: now}
	switch {
	case err != nil:
		// Keep what is cached, unless invalidated meanwhile, for stale answers.
		e.state, e.fetchedAt = nil, time.Time{}
		if el, ok := c.entries[id]; ok {
			old := el.Value.(*cacheEntry)
			e.state, e.fetchedAt = old.state, old.fetchedAt
		}
		e.retryAt, e.err = c.cfg.Now().Add(failureBackoff), err
	case outdated:
		e.fetchedAt = time.Time{} // a change was announced meanwhile: serve once, refetch next time
	}
	c.put(e)
	return st, err
}

// put stores e as its licence's entry and evicts the least recently used
// beyond Size. c.mu must be held.
func (c *StateCache) put(e *cacheEntry) {
	if el, ok := c.entries[e.id]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[e.id] = c.lru.PushFront(e)
	for c.lru.Len() > c.cfg.Size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).id)
	}
}

// Invalidate drops a licence's entry (and its remembered failure); a fetch
// of it in flight is not cached as fresh.
func (c *StateCache) Invalidate(licenseID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.fetching[licenseID]; ok {
		c.fetching[licenseID] = true
	}
	if el, ok := c.entries[licenseID]; ok {
		c.lru.Remove(el)
		delete(c.entries, licenseID)
	}
}

// InvalidateAll drops every entry (after a gap in the change feed); no
// fetch in flight is cached as fresh.
func (c *StateCache) InvalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.fetching {
		c.fetching[id] = true
	}
	c.entries = make(map[string]*list.Element)
	c.lru.Init()
}

// Len returns the number of licences held, counting those held only for a
// failed fetch.
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

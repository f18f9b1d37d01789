package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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
	// TTL is how long an entry is served without asking the store again
	// (default 30s). Past it the entry is still served while one background
	// refresh runs, up to 2*TTL old: a lost change notice goes unnoticed for
	// at most TTL plus one refresh.
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

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	lru     *list.List               // front: most recently used

	hits, misses uint64
	stale        atomic.Uint64 // answers served stale while the store failed
	// fetching holds the store read each licence's callers share. A change
	// announced meanwhile takes the read out of this map (and marks it
	// outdated): callers from then on start a read of their own, so none of
	// them is handed a state read before the change, and the outdated read
	// is never cached. Bounded by the reads in flight.
	fetching map[string]*flight
}

// flight is one store read of a licence, shared by the callers that ask
// for it while it runs.
type flight struct {
	done     chan struct{} // closed when st and err are set
	st       *LicenseState
	err      error
	outdated bool // a change to the licence was announced while it ran; c.mu
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
		fetching: make(map[string]*flight),
	}
}

// GetStale returns the licence's state. Let age be the time since the
// cached entry was fetched; the rules, in order:
//
//   - younger than TTL (fresh): the entry, no store call;
//   - the store failed for this licence less than a second ago: the entry
//     with stale set if it is younger than TTL+maxStale, else that error; no
//     store call;
//   - younger than 2*TTL, with no failure remembered: the entry at once, and
//     a refresh from the store in the background (at most one per licence,
//     detached from ctx, bounded by fetchTimeout);
//   - a failure remembered (the store is down) and a fetch of the licence
//     running: the entry at once with stale set if younger than
//     TTL+maxStale, without waiting for that fetch;
//   - otherwise (older, none, or a failure remembered and its backoff over):
//     a store read, shared with concurrent callers, whose state is returned;
//     if it fails, the entry with stale set if younger than TTL+maxStale,
//     else the store's error.
//
// A caller whose ctx ends is not a store failure: unless the first or the
// third rule answers it, it gets ctx's error at once (or as soon as ctx ends
// while it waits for a read), never a stale answer, and leaves nothing
// remembered; a read it started goes on, detached from ctx, for the others.
//
// Entries are dropped by Invalidate and InvalidateAll, so an announced
// change is never served from the cache. maxStale is the caller's window
// (the gate's on_store_error; 0: never stale).
//
// The returned state is shared with the cache and other callers: it must
// not be modified.
func (c *StateCache) GetStale(ctx context.Context, licenseID string, maxStale time.Duration) (st *LicenseState, stale bool, err error) {
	return c.GetStaleAt(ctx, licenseID, maxStale, c.cfg.Now())
}

// GetStaleAt is GetStale at now, a time the caller read from the cache's
// clock: the gate reads the clock once per request.
func (c *StateCache) GetStaleAt(ctx context.Context, licenseID string, maxStale time.Duration, now time.Time) (st *LicenseState, stale bool, err error) {
	var e cacheEntry
	c.mu.Lock()
	if el, ok := c.entries[licenseID]; ok {
		c.lru.MoveToFront(el)
		e = *el.Value.(*cacheEntry)
	}
	age := now.Sub(e.fetchedAt)
	if e.state != nil && age < c.cfg.TTL {
		c.hits++
		c.mu.Unlock()
		return e.state, false, nil
	}
	f, inFlight := c.fetching[licenseID]
	servable := e.state != nil && age < c.cfg.TTL+maxStale
	switch {
	case e.state != nil && e.err == nil && age < 2*c.cfg.TTL:
		c.hits++
		if !inFlight {
			// Not waited for: fetch caches the outcome, detached from ctx.
			c.startFetch(ctx, licenseID, now)
		}
		c.mu.Unlock()
		return e.state, false, nil
	case ctx.Err() != nil:
		// The caller has gone: no stale answer, no store read, nothing
		// counted or remembered.
		c.mu.Unlock()
		return nil, false, fmt.Errorf("reading licence %s: %w", licenseID, ctx.Err())
	case now.Before(e.retryAt):
		c.misses++
		c.mu.Unlock()
		if servable {
			c.stale.Add(1)
			return e.state, true, nil
		}
		return nil, false, e.err
	case servable && inFlight && e.err != nil:
		c.misses++
		c.mu.Unlock()
		c.stale.Add(1)
		return e.state, true, nil
	}
	c.misses++
	if !inFlight {
		f = c.startFetch(ctx, licenseID, now)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			if servable && !callerGone(f.err) {
				c.stale.Add(1)
				return e.state, true, nil
			}
			return nil, false, f.err
		}
		return f.st, false, nil
	case <-ctx.Done():
		// The fetch goes on for the others and caches its outcome; this
		// caller stops waiting and is told so, not answered stale.
		return nil, false, fmt.Errorf("reading licence %s: %w", licenseID, ctx.Err())
	}
}

// callerGone reports whether err says the caller went away (its context's
// error) rather than that the store failed.
func callerGone(err error) bool {
	return (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && !errors.Is(err, ErrUnavailable)
}

// expired reports whether ctx has ended or its deadline has passed (its
// timer may not have fired yet).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// startFetch starts the store read of a licence that callers from now on
// share. c.mu must be held.
func (c *StateCache) startFetch(ctx context.Context, id string, now time.Time) *flight {
	f := &flight{done: make(chan struct{})}
	c.fetching[id] = f
	go c.fetch(ctx, id, now, f)
	return f
}

// fetch runs f: it reads a licence from the store, caches the outcome (the
// state as fetched at now, or the failure alongside what was cached
// before) unless a change was announced meanwhile, and hands it to f's
// callers.
func (c *StateCache) fetch(ctx context.Context, id string, now time.Time, f *flight) {
	// Callers share this fetch: one of them going away must not fail it
	// for the others.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	st, err := c.read(fctx, id)
	if err != nil && callerGone(err) && expired(fctx) {
		// This fetch's own deadline: the store did not answer in time.
		err = fmt.Errorf("reading licence %s: %w: %w", id, ErrUnavailable, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	f.st, f.err = st, err
	defer close(f.done)
	if f.outdated {
		// Read before a change was announced: good for the callers that
		// asked before the notice, not for the cache.
		return
	}
	delete(c.fetching, id)
	c.remember(id, st, err, now)
}

// remember caches a fetch's outcome. c.mu must be held.
func (c *StateCache) remember(id string, st *LicenseState, err error, now time.Time) {
	e := &cacheEntry{id: id, state: st, fetchedAt: now}
	switch {
	case err != nil && callerGone(err):
		// Not a store failure (a store that gave up on a context other
		// than this fetch's): nothing to remember, nothing new to cache.
		return
	case err != nil:
		// Keep what is cached, unless invalidated meanwhile, for stale answers.
		e.state, e.fetchedAt = nil, time.Time{}
		if el, ok := c.entries[id]; ok {
			old := el.Value.(*cacheEntry)
			e.state, e.fetchedAt = old.state, old.fetchedAt
		}
		e.retryAt, e.err = c.cfg.Now().Add(failureBackoff), err
	}
	c.put(e)
}

// read asks the store for a licence, turning a panic into an error: a
// fetch runs in a goroutine of its own, where a panic would crash the
// process.
func (c *StateCache) read(ctx context.Context, id string) (st *LicenseState, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("reading licence %s: panic: %v", id, r)
		}
	}()
	return c.store.LicenseState(ctx, id)
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
// of it in flight is neither cached nor shared with later callers.
func (c *StateCache) Invalidate(licenseID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.fetching[licenseID]; ok {
		f.outdated = true
		delete(c.fetching, licenseID)
	}
	if el, ok := c.entries[licenseID]; ok {
		c.lru.Remove(el)
		delete(c.entries, licenseID)
	}
}

// InvalidateAll drops every entry (after a gap in the change feed); no
// fetch in flight is cached or shared with later callers.
func (c *StateCache) InvalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, f := range c.fetching {
		f.outdated = true
		delete(c.fetching, id)
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

// Stats returns lookups answered from the cache as current (fresh, or
// while a background refresh runs) and those that were not (read from the
// store, or answered stale or with an error).
func (c *StateCache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Counts returns Stats and how many answers were served stale because the
// store failed.
func (c *StateCache) Counts() (hits, misses, stale uint64) {
	hits, misses = c.Stats()
	return hits, misses, c.stale.Load()
}

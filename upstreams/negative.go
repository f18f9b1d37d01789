package upstreams

import (
	"sync"
	"time"
)

// negativeCache remembers definitive Invalid answers for ttl, at most size
// of them, so a flood of one bad key costs one call. The oldest entries are
// evicted first; an entry cached again goes to the back of the queue, and
// its older queue item no longer matches it and evicts nothing.
type negativeCache struct {
	ttl   time.Duration // negative: disabled
	size  int
	clock Clock

	mu      sync.Mutex
	entries map[string]negativeEntry
	order   []negativeItem // oldest first; items of replaced entries are stale
	gen     uint64
}

type negativeEntry struct {
	until  time.Time
	reason Reason
	gen    uint64 // the queue item that may evict it
}

type negativeItem struct {
	id  string
	gen uint64
}

func newNegativeCache(ttl time.Duration, size int, clock Clock) *negativeCache {
	return &negativeCache{ttl: ttl, size: size, clock: clock, entries: map[string]negativeEntry{}}
}

// get returns the cached Invalid reason for a question, if fresh.
func (c *negativeCache) get(id string) (Reason, bool) {
	if c.ttl < 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return "", false
	}
	if !c.clock.Now().Before(e.until) {
		delete(c.entries, id)
		return "", false
	}
	return e.reason, true
}

// put caches a definitive answer, evicting the oldest entries beyond size.
func (c *negativeCache) put(id string, reason Reason) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries[id] = negativeEntry{until: c.clock.Now().Add(c.ttl), reason: reason, gen: c.gen}
	c.order = append(c.order, negativeItem{id: id, gen: c.gen})
	for len(c.entries) > c.size && len(c.order) > 0 {
		if it := c.order[0]; c.current(it) {
			delete(c.entries, it.id)
		}
		c.order = c.order[1:]
	}
	if len(c.order) > 2*c.size { // drop stale items
		kept := c.order[:0]
		for _, it := range c.order {
			if c.current(it) {
				kept = append(kept, it)
			}
		}
		c.order = kept
	}
}

// current says whether a queue item is its id's cached entry; c.mu held.
func (c *negativeCache) current(it negativeItem) bool {
	e, ok := c.entries[it.id]
	return ok && e.gen == it.gen
}

// forget drops a question's cached answer (its queue item goes stale).
func (c *negativeCache) forget(id string) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

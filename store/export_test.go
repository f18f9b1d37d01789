package store

// Fetching reports whether a store read of the licence is running, so
// tests can tell a stale answer given during a fetch from one given after
// a failed fetch.
func (c *StateCache) Fetching(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.fetching[id]
	return ok
}

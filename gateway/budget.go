package gateway

import (
	"sync"
	"time"

	"github.com/licensegate/licensegate/internal/bucket"
	"github.com/licensegate/licensegate/upstreams"
)

// FailureBudget bounds, per source, the activations of keys the store
// does not know that may be put to the source without being vindicated
// (SPEC section 4): a flood of random well-formed keys, spread over more
// client addresses than the per-IP limits catch, is answered 429
// rate_limited before it spends the marketplace's rate budget that honest
// installers need. A call is reserved before the source is asked, so a
// concurrent burst cannot overdraw it, and given back when the key is
// valid; a definitive "no" or an unknown outcome keeps it spent. Local
// sources (the author's key file) cost nothing to ask and are not
// budgeted. Safe for concurrent use.
type FailureBudget struct {
	rate upstreams.Rate
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket.Bucket // by source name: bounded by the configuration
}

// NewFailureBudget returns a budget of r per source (burst r.Calls) on
// the clock now (nil: time.Now).
func NewFailureBudget(r upstreams.Rate, now func() time.Time) *FailureBudget {
	if now == nil {
		now = time.Now
	}
	return &FailureBudget{rate: r, now: now, buckets: map[string]*bucket.Bucket{}}
}

// reserve takes a call of source's budget, or says how long until one is
// free. A nil budget allows everything.
func (b *FailureBudget) reserve(source string) (bool, time.Duration) {
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, ok := b.buckets[source]
	if !ok {
		bk = bucket.New(b.rate, b.rate.Calls)
		b.buckets[source] = bk
	}
	return bk.Take(b.now())
}

// refund gives a reserved call back: the key was vindicated.
func (b *FailureBudget) refund(source string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk, ok := b.buckets[source]; ok {
		bk.Refund(b.now())
	}
}

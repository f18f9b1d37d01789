package httpapi

import (
	"sync"
	"time"

	"github.com/licensegate/licensegate/internal/bucket"
	"github.com/licensegate/licensegate/upstreams"
)

// Limiter is a token bucket per client, in memory, holding at most
// maxIPBuckets clients. Clients are keyed by policy.RateKey: an IPv4
// address, or an IPv6 /64 (one host routinely holds a whole /64, so
// per-address buckets would be unlimited). Past the cap, a new client
// first sweeps out the buckets that have refilled (at most once per refill
// interval, so the sweep's cost is spread over many requests) and, while
// still full, evicts one arbitrary bucket: a flood of distinct addresses
// costs O(1) per request and cannot grow the map.
//
// A call is taken before the work it bounds and may be given back after
// (Refund), so a concurrent burst cannot slip through between a check and
// a charge.
type Limiter struct {
	rate  upstreams.Rate
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket.Bucket
	swept   time.Time // last sweep
}

// maxIPBuckets bounds the clients each limiter remembers.
const maxIPBuckets = 10000

func NewLimiter(r upstreams.Rate) *Limiter {
	return &Limiter{
		rate: r, burst: r.Calls, now: time.Now,
		buckets: map[string]*bucket.Bucket{},
	}
}

// bucket returns key's bucket, making room for a new one if need be.
func (l *Limiter) bucket(key string, now time.Time) *bucket.Bucket {
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = bucket.New(l.rate.Every(), l.burst)
		l.buckets[key] = b
	}
	return b
}

// makeRoom keeps the map below maxIPBuckets before an insertion.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < maxIPBuckets {
		return
	}
	// A drained bucket takes burst*every to refill: sweeping more often
	// would rescan the same busy buckets for nothing.
	if refill := time.Duration(l.burst) * l.rate.Every(); l.swept.IsZero() || now.Sub(l.swept) >= refill {
		l.swept = now
		l.sweep(now)
	}
	// Still full: every remembered client was active within one refill
	// interval. Forget one at random (map order) rather than rescan.
	for key := range l.buckets {
		if len(l.buckets) < maxIPBuckets {
			break
		}
		delete(l.buckets, key)
	}
}

// sweep drops buckets that have refilled: they hold no state worth keeping.
func (l *Limiter) sweep(now time.Time) {
	for key, b := range l.buckets {
		if b.Full(now) {
			delete(l.buckets, key)
		}
	}
}

// Allow takes a call for key, or says how long until one is free. A nil
// Limiter allows everything.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0 // no limit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return l.bucket(key, now).Take(now)
}

// Refund gives back a call Allow took (the work did not count). A bucket
// full again is forgotten: a client whose work always counts for nothing
// leaves no state behind.
func (l *Limiter) Refund(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return // evicted meanwhile: it holds a full bucket anyway
	}
	now := l.now()
	b.Refund(now)
	if b.Full(now) {
		delete(l.buckets, key)
	}
}

// Clients is how many clients the limiter remembers: those whose bucket
// is not full.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

package caddymodule

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/licensegate/licensegate/upstreams"
)

// ipLimiter is a token bucket per client IP, in memory, holding at most
// maxIPBuckets addresses. Past that, a new address first sweeps out the
// buckets that have refilled (at most once per refill interval, so the
// sweep's cost is spread over many requests) and, while still full,
// evicts one arbitrary bucket: a flood of distinct addresses costs O(1) per
// request and cannot grow the map. The buckets are upstreams.Rate's, as
// the sources' budgets are.
type ipLimiter struct {
	rate  upstreams.Rate
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time // last sweep
}

// maxIPBuckets bounds the addresses each limiter remembers.
const maxIPBuckets = 10000

func newIPLimiter(r upstreams.Rate) *ipLimiter {
	return &ipLimiter{
		rate: r, burst: r.Calls, now: time.Now,
		buckets: map[string]*rate.Limiter{},
	}
}

// bucket returns ip's bucket, making room for a new one if need be.
func (l *ipLimiter) bucket(ip string, now time.Time) *rate.Limiter {
	b, ok := l.buckets[ip]
	if !ok {
		l.makeRoom(now)
		b = l.rate.Bucket(l.burst)
		l.buckets[ip] = b
	}
	return b
}

// makeRoom keeps the map below maxIPBuckets before an insertion.
func (l *ipLimiter) makeRoom(now time.Time) {
	if len(l.buckets) < maxIPBuckets {
		return
	}
	// A drained bucket takes burst*every to refill: sweeping more often
	// would rescan the same busy buckets for nothing.
	if refill := time.Duration(l.burst) * l.rate.Every(); l.swept.IsZero() || now.Sub(l.swept) >= refill {
		l.swept = now
		l.sweep(now)
	}
	// Still full: every remembered address was active within one refill
	// interval. Forget one at random (map order) rather than rescan.
	for ip := range l.buckets {
		if len(l.buckets) < maxIPBuckets {
			break
		}
		delete(l.buckets, ip)
	}
}

// sweep drops buckets that have refilled: they hold no state worth keeping.
func (l *ipLimiter) sweep(now time.Time) {
	for ip, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, ip)
		}
	}
}

// allow takes a token for ip, or says how long until one is free.
func (l *ipLimiter) allow(ip string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(ip, now)
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, l.rate.TokenWait(b, now)
}

// blocked says whether ip has no token left, without taking one. It only
// looks: an address never seen has a full bucket and is not recorded.
func (l *ipLimiter) blocked(ip string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[ip]
	if !ok {
		return false, 0
	}
	now := l.now()
	if b.TokensAt(now) >= 1 {
		return false, 0
	}
	return true, l.rate.TokenWait(b, now)
}

// take spends a token for ip even when none is left (a failure to count).
func (l *ipLimiter) take(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(ip, now)
	if !b.AllowN(now, 1) {
		b.ReserveN(now, 1) // go into debt: repeated failures extend the block
	}
}

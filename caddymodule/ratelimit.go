package caddymodule

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/licensegate/licensegate/upstreams"
)

// ipLimiter is a token bucket per client IP, in memory. Idle buckets are
// swept as the map grows, so a flood of addresses cannot grow it without
// bound.
type ipLimiter struct {
	every time.Duration // one token per
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// maxIPBuckets triggers a sweep of full (idle) buckets.
const maxIPBuckets = 10000

func newIPLimiter(r upstreams.Rate) *ipLimiter {
	return &ipLimiter{
		every: r.Period / time.Duration(r.Calls), burst: r.Calls, now: time.Now,
		buckets: map[string]*rate.Limiter{},
	}
}

func (l *ipLimiter) bucket(ip string) *rate.Limiter {
	b, ok := l.buckets[ip]
	if !ok {
		if len(l.buckets) >= maxIPBuckets {
			l.sweep()
		}
		b = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[ip] = b
	}
	return b
}

// sweep drops buckets that have refilled: they hold no state worth keeping.
func (l *ipLimiter) sweep() {
	now := l.now()
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
	b := l.bucket(ip)
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, l.wait(b, now)
}

// blocked says whether ip has no token left, without taking one.
func (l *ipLimiter) blocked(ip string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(ip)
	if b.TokensAt(now) >= 1 {
		return false, 0
	}
	return true, l.wait(b, now)
}

// take spends a token for ip even when none is left (a failure to count).
func (l *ipLimiter) take(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(ip)
	if !b.AllowN(now, 1) {
		b.ReserveN(now, 1) // go into debt: repeated failures extend the block
	}
}

func (l *ipLimiter) wait(b *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - b.TokensAt(now)
	return time.Duration(math.Ceil(missing * float64(l.every)))
}

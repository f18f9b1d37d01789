// Package bucket is a token bucket whose calls can be given back: a
// limiter that reserves before the work it bounds and refunds when the
// work turns out not to count (a failed-activation limit reserved before
// the activation and refunded on success, so a concurrent burst cannot
// slip through between a check and a charge). golang.org/x/time/rate
// refunds only reservations not yet due. Not safe for concurrent use: its
// owner locks.
package bucket

import (
	"math"
	"time"
)

// Bucket holds up to burst calls and refills one per every.
type Bucket struct {
	every  time.Duration
	burst  float64
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// New returns a full bucket of burst calls refilling one per every.
func New(every time.Duration, burst int) *Bucket {
	return &Bucket{every: every, burst: float64(burst), tokens: float64(burst)}
}

// TokensAt is how many calls the bucket holds at now.
func (b *Bucket) TokensAt(now time.Time) float64 {
	if b.at.IsZero() || !now.After(b.at) {
		return b.tokens
	}
	return math.Min(b.burst, b.tokens+float64(now.Sub(b.at))/float64(b.every))
}

// Full reports whether the bucket holds all its calls at now: it holds no
// state worth keeping.
func (b *Bucket) Full(now time.Time) bool { return b.TokensAt(now) >= b.burst }

// Take takes a call at now, or says how long until one is there.
func (b *Bucket) Take(now time.Time) (bool, time.Duration) {
	t := b.TokensAt(now)
	if t < 1 {
		// rounded up, less float noise: never a retry that is still early
		return false, time.Duration(math.Ceil((1-t)*float64(b.every) - 1e-3))
	}
	b.set(t-1, now)
	return true, 0
}

// Refund gives back a call taken earlier.
func (b *Bucket) Refund(now time.Time) {
	b.set(math.Min(b.burst, b.TokensAt(now)+1), now)
}

func (b *Bucket) set(tokens float64, now time.Time) {
	b.tokens = tokens
	if now.After(b.at) {
		b.at = now
	}
}

package policy

import "time"

// Guard is the mass-suspension guard (SPEC section 7): when a source's
// definitive-invalid results in the last Window exceed both Min and Ratio
// of its checks, automatic suspension pauses for that source. An outage
// that makes a marketplace answer "not found" for everyone then flags
// licences for the author to look at instead of suspending them all.
type Guard struct {
	Window time.Duration // default 1h
	Ratio  float64       // default 0.05
	Min    int           // default 20

	buckets [guardBuckets]guardBucket
}

// Guard defaults.
const (
	DefaultGuardWindow = time.Hour
	DefaultGuardRatio  = 0.05
	DefaultGuardMin    = 20
	guardBuckets       = 60
)

type guardBucket struct {
	slot            int64 // which window slice this bucket counts
	checks, invalid int
}

func (g *Guard) defaults() (time.Duration, float64, int) {
	w, ratio, minimum := g.Window, g.Ratio, g.Min
	if w <= 0 {
		w = DefaultGuardWindow
	}
	if ratio <= 0 {
		ratio = DefaultGuardRatio
	}
	if minimum <= 0 {
		minimum = DefaultGuardMin
	}
	return w, ratio, minimum
}

func (g *Guard) slot(at time.Time) int64 {
	w, _, _ := g.defaults()
	width := max(w/guardBuckets, time.Nanosecond)
	return at.UnixNano() / int64(width)
}

// Observe counts one check result (definitive invalid or not) at at.
func (g *Guard) Observe(at time.Time, definitiveInvalid bool) {
	s := g.slot(at)
	b := &g.buckets[s%guardBuckets]
	if b.slot != s {
		*b = guardBucket{slot: s}
	}
	b.checks++
	if definitiveInvalid {
		b.invalid++
	}
}

// Counts returns the checks and definitive-invalid results in the window
// ending at at.
func (g *Guard) Counts(at time.Time) (checks, invalid int) {
	now := g.slot(at)
	for _, b := range g.buckets {
		if b.slot > now-guardBuckets && b.slot <= now {
			checks += b.checks
			invalid += b.invalid
		}
	}
	return checks, invalid
}

// Tripped reports whether automatic suspension is paused at at.
func (g *Guard) Tripped(at time.Time) bool {
	_, ratio, minimum := g.defaults()
	checks, invalid := g.Counts(at)
	return invalid >= minimum && float64(invalid) > ratio*float64(checks)
}

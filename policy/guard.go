package policy

import "time"

// Guard is the mass-suspension guard (SPEC section 7): when a source's
// definitive-invalid results exceed both Min and Ratio of its checks, in
// the last Window or in the last Day, automatic suspension pauses for that
// source. An outage that makes a marketplace answer "not found" for
// everyone then flags licences for the author to look at instead of
// suspending them all.
//
// Two windows, because rechecks are spread: a source whose licences are
// due together shows a burst within the hour, one whose licences are
// spread over the day may show 10% invalid answers without ever reaching
// Min in an hour. And since the confirm rules make a suspension wait for
// several answers over days, a mass event is seen by the day window long
// before any of its licences could be suspended.
//
// A guard knows only what it observed: a worker that just started (or
// took the lease over from another instance) has not seen the last day.
// Warm tells when it has; until then the worker holds suspensions too.
type Guard struct {
	Window time.Duration // default 1h
	Day    time.Duration // the long window, default 24h
	Ratio  float64       // default 0.05
	Min    int           // default 20

	short, long window
	since       time.Time // first observation
}

// Guard defaults.
const (
	DefaultGuardWindow = time.Hour
	DefaultGuardDay    = 24 * time.Hour
	DefaultGuardRatio  = 0.05
	DefaultGuardMin    = 20
	guardBuckets       = 60
)

// window counts checks in guardBuckets slices of its width.
type window struct {
	buckets [guardBuckets]guardBucket
}

type guardBucket struct {
	slot            int64 // which slice this bucket counts
	checks, invalid int
}

func slotOf(at time.Time, w time.Duration) int64 {
	width := max(w/guardBuckets, time.Nanosecond)
	return at.UnixNano() / int64(width)
}

func (w *window) observe(at time.Time, d time.Duration, invalid bool) {
	s := slotOf(at, d)
	b := &w.buckets[s%guardBuckets]
	if b.slot > s {
		return // an observation older than the bucket's slice: out of the window
	}
	if b.slot != s {
		*b = guardBucket{slot: s}
	}
	b.checks++
	if invalid {
		b.invalid++
	}
}

func (w *window) counts(at time.Time, d time.Duration) (checks, invalid int) {
	now := slotOf(at, d)
	for _, b := range w.buckets {
		if b.slot > now-guardBuckets && b.slot <= now {
			checks += b.checks
			invalid += b.invalid
		}
	}
	return checks, invalid
}

func (g *Guard) defaults() (short, long time.Duration, ratio float64, minimum int) {
	short, long, ratio, minimum = g.Window, g.Day, g.Ratio, g.Min
	if short <= 0 {
		short = DefaultGuardWindow
	}
	if long <= 0 {
		long = DefaultGuardDay
	}
	long = max(long, short)
	if ratio <= 0 {
		ratio = DefaultGuardRatio
	}
	if minimum <= 0 {
		minimum = DefaultGuardMin
	}
	return short, long, ratio, minimum
}

// Begin says the guard watches from at on (a worker starting, or taking
// over the lease): Warm counts from the earliest of at and the first
// observation.
func (g *Guard) Begin(at time.Time) {
	if g.since.IsZero() || at.Before(g.since) {
		g.since = at
	}
}

// Observe counts one check result (definitive invalid or not) at at.
func (g *Guard) Observe(at time.Time, definitiveInvalid bool) {
	short, long, _, _ := g.defaults()
	g.Begin(at)
	g.short.observe(at, short, definitiveInvalid)
	g.long.observe(at, long, definitiveInvalid)
}

// Counts returns the checks and definitive-invalid results in the short
// window ending at at.
func (g *Guard) Counts(at time.Time) (checks, invalid int) {
	short, _, _, _ := g.defaults()
	return g.short.counts(at, short)
}

// DayCounts returns the checks and definitive-invalid results in the long
// window ending at at.
func (g *Guard) DayCounts(at time.Time) (checks, invalid int) {
	_, long, _, _ := g.defaults()
	return g.long.counts(at, long)
}

// Tripped reports whether automatic suspension is paused at at: either
// window holds at least Min definitive-invalid results and more than Ratio
// of its checks.
func (g *Guard) Tripped(at time.Time) bool {
	_, _, ratio, minimum := g.defaults()
	over := func(checks, invalid int) bool {
		return invalid >= minimum && float64(invalid) > ratio*float64(checks)
	}
	return over(g.Counts(at)) || over(g.DayCounts(at))
}

// Clear reports whether both windows are well below the threshold at at:
// fewer than half of Min definitive-invalid results, or at most half of
// Ratio of the checks. A guard that tripped stays tripped until it is
// clear (hysteresis), so a source hovering at the threshold neither
// raises an alert per crossing nor lets a suspension slip through between
// two.
func (g *Guard) Clear(at time.Time) bool {
	_, _, ratio, minimum := g.defaults()
	below := func(checks, invalid int) bool {
		return 2*invalid < minimum || float64(invalid) <= ratio/2*float64(checks)
	}
	return below(g.Counts(at)) && below(g.DayCounts(at))
}

// Warm reports whether the guard has observed for a whole long window at
// at, so that Tripped can be trusted to have seen a mass event.
func (g *Guard) Warm(at time.Time) bool {
	_, long, _, _ := g.defaults()
	return !g.since.IsZero() && at.Sub(g.since) >= long
}

// WarmAt is when the guard becomes warm (zero: it has observed nothing).
func (g *Guard) WarmAt() time.Time {
	if g.since.IsZero() {
		return time.Time{}
	}
	_, long, _, _ := g.defaults()
	return g.since.Add(long)
}

package policy

import (
	"fmt"
	"strings"
	"time"
)

// Leak detection (SPEC section 4): one licence seen activating from more
// distinct production domains, or re-activating one installation from more
// distinct client networks, than its threshold within the window is locked
// for new activations and re-activations.

// Sighting kinds.
const (
	SightDomain  = "domain"  // a production domain an activation was attempted on
	SightNetwork = "network" // a client network a re-activation came from
)

// Sighting is one distinct domain or network seen for a licence, and when
// it was last seen.
type Sighting struct {
	Kind  string    `json:"kind"`
	Value string    `json:"value"`
	At    time.Time `json:"at"`
}

// LeakRule is a product's leak_threshold.
type LeakRule struct {
	Threshold int           // distinct values tolerated (default 5)
	Window    time.Duration // default 24h
}

// Defaults of leak_threshold.
const (
	DefaultLeakThreshold = 5
	DefaultLeakWindow    = 24 * time.Hour
)

// Limit is the number of distinct values of one kind a licence with slots
// production slots may show within the window: the threshold, or twice
// the slots when that is more (an agency with 20 sites is not a leak).
func (r LeakRule) Limit(slots int) int {
	n := r.Threshold
	if n <= 0 {
		n = DefaultLeakThreshold
	}
	return max(n, 2*slots)
}

func (r LeakRule) window() time.Duration {
	if r.Window > 0 {
		return r.Window
	}
	return DefaultLeakWindow
}

// Observe records s among seen (forgetting what is older than the window,
// one entry per kind and value) and reports whether s's kind now has more
// distinct values than Limit(slots). The result holds at most Limit+1
// entries per kind, so the licence record stays bounded whatever is tried.
func (r LeakRule) Observe(seen []Sighting, s Sighting, slots int) ([]Sighting, bool) {
	limit := r.Limit(slots)
	cutoff := s.At.Add(-r.window())
	out := make([]Sighting, 0, len(seen)+1)
	count := 0
	for _, x := range seen {
		if !x.At.After(cutoff) || (x.Kind == s.Kind && x.Value == s.Value) {
			continue
		}
		if x.Kind == s.Kind {
			count++
		}
		out = append(out, x)
	}
	out = append(out, s)
	count++
	return trimKind(out, s.Kind, limit+1), count > limit
}

// trimKind keeps the newest keep entries of kind (seen is oldest first).
func trimKind(seen []Sighting, kind string, keep int) []Sighting {
	n := 0
	for _, x := range seen {
		if x.Kind == kind {
			n++
		}
	}
	drop := n - keep
	if drop <= 0 {
		return seen
	}
	out := seen[:0]
	for _, x := range seen {
		if x.Kind == kind && drop > 0 {
			drop--
			continue
		}
		out = append(out, x)
	}
	return out
}

// Attempt is one activation attempt as leak detection sees it.
type Attempt struct {
	// Domain is the normalised domain; it counts when Production is set
	// (the attempt was, or would have been, a production installation),
	// refused attempts included.
	Domain     string
	Production bool
	// Network is the client network of a re-activation that came from
	// another network than the installation's previous one; "" otherwise.
	Network string
	At      time.Time
}

// Watch records what an attempt shows among seen and returns the
// sightings to keep; changed says whether they differ from seen by more
// than a refreshed time within a slack of window/24 (a repeated attempt
// need not cost a write: it is forgotten at most that much early). lock
// is the reason to lock the licence when the attempt takes either kind
// past Limit(slots), and names no domain or network.
func (r LeakRule) Watch(seen []Sighting, a Attempt, slots int) (next []Sighting, changed bool, lock string) {
	next = seen
	var leaked bool
	if a.Production && a.Domain != "" {
		if next, leaked = r.Observe(next, Sighting{Kind: SightDomain, Value: a.Domain, At: a.At}, slots); leaked {
			lock = fmt.Sprintf("leak_threshold: activations attempted on more than %d distinct production domains within %s", r.Limit(slots), shortDuration(r.window()))
		}
	}
	if a.Network != "" {
		if next, leaked = r.Observe(next, Sighting{Kind: SightNetwork, Value: a.Network, At: a.At}, slots); leaked && lock == "" {
			lock = fmt.Sprintf("leak_threshold: re-activations from more than %d distinct client networks within %s", r.Limit(slots), shortDuration(r.window()))
		}
	}
	return next, lock != "" || !sameSightings(seen, next, r.window()/24), lock
}

// sameSightings reports whether a and b hold the same values with times
// at most slack apart.
func sameSightings(a, b []Sighting, slack time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	at := make(map[[2]string]time.Time, len(a))
	for _, x := range a {
		at[[2]string{x.Kind, x.Value}] = x.At
	}
	for _, y := range b {
		t, ok := at[[2]string{y.Kind, y.Value}]
		if !ok || y.At.Sub(t) > slack || t.Sub(y.At) > slack {
			return false
		}
	}
	return true
}

// shortDuration is d as people write it: 24h, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

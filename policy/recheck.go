package policy

import (
	"fmt"
	"time"
)

// The background recheck's rules (SPEC section 7), as a pure function of a
// licence's recheck state and one check's result. Nothing here does I/O:
// the worker in package gateway asks the source and stores what Next says.

// RecheckMode is a product's recheck mode.
type RecheckMode string

// Recheck modes.
const (
	RecheckManual RecheckMode = "manual" // definitive invalid flags; the author decides
	RecheckAuto   RecheckMode = "auto"   // suspends after confirm results over confirm_window
	RecheckOff    RecheckMode = "off"    // no background checks
)

// ParseRecheckMode validates a configured mode.
func ParseRecheckMode(s string) (RecheckMode, error) {
	switch m := RecheckMode(s); m {
	case RecheckManual, RecheckAuto, RecheckOff:
		return m, nil
	}
	return "", fmt.Errorf("%q is not manual, auto or off", s)
}

// Recheck defaults (SPEC sections 3 and 7).
const (
	DefaultRecheckEvery  = 168 * time.Hour
	DefaultConfirm       = 3
	DefaultConfirmWindow = 72 * time.Hour
	DefaultExpiryGrace   = 168 * time.Hour
	// FirstBackoff is the wait after the first unknown outcome; each
	// further one doubles it, up to the product's interval.
	FirstBackoff = 5 * time.Minute
)

// RecheckRules are a product's recheck options.
type RecheckRules struct {
	Every               time.Duration
	Mode                RecheckMode
	Confirm             int
	ConfirmWindow       time.Duration
	AutoSuspendNotFound bool
	ExpiryGrace         time.Duration
}

// WithDefaults fills what is unset.
func (r RecheckRules) WithDefaults() RecheckRules {
	if r.Every <= 0 {
		r.Every = DefaultRecheckEvery
	}
	if r.Mode == "" {
		r.Mode = RecheckManual
	}
	if r.Confirm <= 0 {
		r.Confirm = DefaultConfirm
	}
	if r.ConfirmWindow <= 0 {
		r.ConfirmWindow = DefaultConfirmWindow
	}
	if r.ExpiryGrace <= 0 {
		r.ExpiryGrace = DefaultExpiryGrace
	}
	return r
}

// Check outcomes, as the worker reports them.
const (
	CheckValid   = "valid"
	CheckInvalid = "invalid"
	CheckUnknown = "unknown"
)

// Reasons a check can give for invalid. Only these describe the licence
// itself; anything else (domain_not_allowed, wrong_product: a refusal about
// the request) is not definitive and counts as unknown.
const (
	ReasonNotFound  = "not_found"
	ReasonRevoked   = "revoked"
	ReasonRefunded  = "refunded"
	ReasonDisabled  = "disabled"
	ReasonSuspended = "suspended"
	ReasonExpired   = "expired"
)

// Definitive reports whether an invalid reason is about the licence itself.
func Definitive(reason string) bool {
	switch reason {
	case ReasonNotFound, ReasonRevoked, ReasonRefunded, ReasonDisabled, ReasonSuspended, ReasonExpired:
		return true
	}
	return false
}

// Licence statuses the recheck reads and writes (the store's spelling).
const (
	StatusActive    = "active"
	StatusFlagged   = "flagged"
	StatusSuspended = "suspended"
	StatusExpired   = "expired"
	// SetByRecheck marks a status the recheck set, which a later valid
	// answer may undo; a status the author or the source set stays.
	SetByRecheck = "recheck"
)

// RecheckState is what the recheck keeps per licence.
type RecheckState struct {
	Status    string
	StatusBy  string
	ExpiresAt *time.Time
	// NextCheckAt is when the licence is due again.
	NextCheckAt time.Time
	// Definitive counts consecutive definitive-invalid results, the first
	// of them at FirstDefinitiveAt.
	Definitive        int
	FirstDefinitiveAt time.Time
	// Unknown counts consecutive unknown results (the backoff exponent).
	Unknown int
}

// CheckResult is one check's outcome.
type CheckResult struct {
	Outcome string // CheckValid, CheckInvalid or CheckUnknown
	Reason  string // for CheckInvalid
	// ExpiresAt is the source's expiry for a valid licence (nil: none),
	// or the passed one it answered with for an expired licence.
	ExpiresAt *time.Time
	At        time.Time
}

// Recheck events (SPEC section 10).
const (
	EventFlagged    = "license.flagged"
	EventSuspended  = "license.suspended"
	EventReinstated = "license.reinstated"
	EventExpired    = "license.expired"
	EventRenewed    = "license.renewed"
)

// Transition is what one check does to a licence.
type Transition struct {
	Next RecheckState
	// Event is the state change to announce, or "".
	Event string
	// Held reports that a flag or an automatic suspension was withheld
	// by the mass-suspension guard: the licence keeps its status, and the
	// answer counts in its definitive streak.
	Held bool
}

// Next applies one check result. A definitive answer flags the licence at
// once (the flag still serves and is the author's signal), and in auto
// mode suspends it once the confirm rules hold. guardTripped says the
// mass-suspension guard holds the licence's source: a definitive answer
// then changes nothing but the streak and the schedule (Held), and the
// guard's one alert tells the author. jitter in [0, 1)
// spreads the next check over the last tenth of the interval.
func (r RecheckRules) Next(st RecheckState, res CheckResult, guardTripped bool, jitter float64) Transition {
	r = r.WithDefaults()
	if res.Outcome == CheckInvalid && !Definitive(res.Reason) {
		res.Outcome = CheckUnknown
	}
	var t Transition
	switch res.Outcome {
	case CheckValid:
		t = r.valid(st, res, jitter)
	case CheckInvalid:
		t = r.invalid(st, res, guardTripped, jitter)
	default:
		t = r.unknown(st, res, jitter)
	}
	if r.Mode == RecheckOff {
		t.Next.NextCheckAt = time.Time{} // a check asked for by hand: never due
	}
	return t
}

// FirstCheck is when a licence stored at at is first due: one interval on,
// spread by jitter in [0, 1), and no later than its expiry; zero (never)
// in mode off.
func (r RecheckRules) FirstCheck(at time.Time, expires *time.Time, jitter float64) time.Time {
	r = r.WithDefaults()
	if r.Mode == RecheckOff {
		return time.Time{}
	}
	return r.scheduled(at, expires, jitter)
}

func (r RecheckRules) valid(st RecheckState, res CheckResult, jitter float64) Transition {
	t := Transition{Next: st}
	n := &t.Next
	n.Definitive, n.FirstDefinitiveAt, n.Unknown = 0, time.Time{}, 0
	renewed := res.ExpiresAt != nil && (st.ExpiresAt == nil || res.ExpiresAt.After(*st.ExpiresAt))
	n.ExpiresAt = res.ExpiresAt
	switch {
	case st.Status == StatusFlagged, st.Status != StatusActive && st.StatusBy == SetByRecheck:
		n.Status, n.StatusBy = StatusActive, ""
		t.Event = EventReinstated
	case renewed && st.ExpiresAt != nil:
		t.Event = EventRenewed
	}
	n.NextCheckAt = r.scheduled(res.At, n.ExpiresAt, jitter)
	return t
}

func (r RecheckRules) invalid(st RecheckState, res CheckResult, guardTripped bool, jitter float64) Transition {
	t := Transition{Next: st}
	n := &t.Next
	n.Unknown = 0
	if n.Definitive == 0 {
		n.FirstDefinitiveAt = res.At
	}
	n.Definitive++
	n.NextCheckAt = r.scheduled(res.At, nil, jitter)
	if st.Status != StatusActive && st.Status != StatusFlagged {
		return t // already out of service: nothing more to decide
	}
	if exp := expiryOf(st, res); res.Reason == ReasonExpired && exp != nil && !res.At.Before(*exp) {
		// The source confirms a passed expiry: our record's, or the date
		// it answers with (an author's key file given a past expires_at).
		n.Status, n.StatusBy, n.ExpiresAt = StatusExpired, SetByRecheck, exp
		t.Event = EventExpired
		return t
	}
	confirmed := r.confirmed(*n, res)
	flag := st.Status != StatusFlagged
	if guardTripped {
		// A mass event at the source: its one alert stands for every
		// licence it would flag or suspend, and each keeps its status.
		t.Held = confirmed || flag
		return t
	}
	if confirmed {
		n.Status, n.StatusBy = r.outOfService(res.Reason), SetByRecheck
		t.Event = EventSuspended
		if n.Status == StatusExpired {
			t.Event = EventExpired
		}
		return t
	}
	if flag {
		n.Status, n.StatusBy = StatusFlagged, SetByRecheck
		t.Event = EventFlagged
	}
	return t
}

// expiryOf is the expiry an "expired" answer confirms: the date the
// source answered with, else the one recorded.
func expiryOf(st RecheckState, res CheckResult) *time.Time {
	if res.ExpiresAt != nil {
		return res.ExpiresAt
	}
	return st.ExpiresAt
}

// confirmed reports whether auto mode may take the licence out of service.
func (r RecheckRules) confirmed(n RecheckState, res CheckResult) bool {
	if r.Mode != RecheckAuto {
		return false
	}
	if res.Reason == ReasonNotFound && !r.AutoSuspendNotFound {
		return false // Envato answers 404 for closed buyer accounts too
	}
	if r.Confirm <= 1 {
		return true // confirm 1: the first definitive answer, whatever the window
	}
	return n.Definitive >= r.Confirm && res.At.Sub(n.FirstDefinitiveAt) >= r.ConfirmWindow
}

func (r RecheckRules) outOfService(reason string) string {
	if reason == ReasonExpired {
		return StatusExpired
	}
	return StatusSuspended
}

func (r RecheckRules) unknown(st RecheckState, res CheckResult, jitter float64) Transition {
	t := Transition{Next: st}
	n := &t.Next
	wait := FirstBackoff << min(st.Unknown, 30)
	if wait <= 0 || wait > r.Every {
		wait = r.Every
	}
	n.Unknown++
	n.NextCheckAt = res.At.Add(spread(wait, jitter))
	return t
}

// scheduled is the next regular check: one interval on, spread by jitter,
// and no later than a coming expiry (so a passed expiry is rechecked at
// once).
func (r RecheckRules) scheduled(at time.Time, expires *time.Time, jitter float64) time.Time {
	next := at.Add(spread(r.Every, jitter))
	if expires != nil && expires.After(at) && expires.Before(next) {
		return *expires
	}
	return next
}

// spread moves d back by up to a tenth, so licences verified together are
// not all due in the same second.
func spread(d time.Duration, jitter float64) time.Duration {
	if jitter < 0 || jitter >= 1 {
		jitter = 0
	}
	return d - time.Duration(float64(d/10)*jitter)
}

// ServesUntil is when an expiring licence stops serving while its source
// cannot confirm the expiry: its expiry plus the grace.
func (r RecheckRules) ServesUntil(expires time.Time) time.Time {
	return expires.Add(r.WithDefaults().ExpiryGrace)
}

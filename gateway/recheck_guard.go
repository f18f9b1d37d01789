package gateway

import (
	"time"

	"github.com/licensegate/licensegate/policy"
)

// The mass-suspension guard (policy.Guard), one per source on the lease
// holder: while a source's definitive-invalid answers are too many (a
// marketplace outage answering "not found" for everyone), automatic
// suspension pauses for it and its licences are flagged instead.

// sourceGuard is one source's guard and whether its trip was announced.
type sourceGuard struct {
	guard            policy.Guard
	alerted, pending bool
}

// definitiveInvalid reports whether res counts as the guard's
// definitive-invalid answer.
func definitiveInvalid(res policy.CheckResult) bool {
	return res.Outcome == policy.CheckInvalid && policy.Definitive(res.Reason)
}

// guardAlert is a trip of a source's guard to announce.
type guardAlert struct {
	source          string
	checks, invalid int
}

// observe counts an answered check in its source's guard and says whether
// automatic suspension is held for the source: the guard tripped. A trip
// not announced yet comes back as an alert, to be written with this check.
// A guard that has watched for less than a day (this instance just took
// the lease) holds nothing on that account: the options say when a
// licence is flagged or suspended, and the guard's hourly window sees a
// mass event within its first minimum of answers.
//
// An answer not counted (counted false) only asks whether the guard holds.
func (w *rechecker) observe(source string, res policy.CheckResult, now time.Time, counted bool) (bool, *guardAlert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.guards[source]
	if g == nil {
		g = &sourceGuard{}
		w.guards[source] = g
	}
	g.guard.Begin(now)
	if counted && res.Outcome != policy.CheckUnknown && !(res.Outcome == policy.CheckInvalid && !policy.Definitive(res.Reason)) {
		g.guard.Observe(now, definitiveInvalid(res))
	}
	tripped := g.guard.Tripped(now) || (g.alerted || g.pending) && !g.guard.Clear(now)
	if !tripped {
		g.alerted = false
		return false, nil
	}
	var alert *guardAlert
	if !g.alerted && !g.pending {
		g.pending = true
		checks, invalid := g.guard.Counts(now)
		if invalid < policy.DefaultGuardMin {
			checks, invalid = g.guard.DayCounts(now) // the day window tripped it
		}
		alert = &guardAlert{source: source, checks: checks, invalid: invalid}
	}
	return true, alert
}

// announced settles a pending alert: written with the check, or not.
func (w *rechecker) announced(source string, hadAlert, written bool) {
	if !hadAlert {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.guards[source]; g != nil {
		g.pending = false
		g.alerted = g.alerted || written
	}
}

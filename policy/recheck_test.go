package policy

import (
	"testing"
	"time"
)

func TestParseRecheckMode(t *testing.T) {
	for _, s := range []string{"manual", "auto", "off"} {
		if m, err := ParseRecheckMode(s); err != nil || string(m) != s {
			t.Errorf("ParseRecheckMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Auto", "suspend"} {
		if _, err := ParseRecheckMode(s); err == nil {
			t.Errorf("ParseRecheckMode(%q) accepted", s)
		}
	}
}

func TestDefinitive(t *testing.T) {
	for _, r := range []string{ReasonNotFound, ReasonRevoked, ReasonRefunded, ReasonDisabled, ReasonSuspended, ReasonExpired} {
		if !Definitive(r) {
			t.Errorf("%s not definitive", r)
		}
	}
	for _, r := range []string{"domain_not_allowed", "wrong_product", "", "weird"} {
		if Definitive(r) {
			t.Errorf("%q definitive: a refusal about the request must count as unknown", r)
		}
	}
}

func active() RecheckState { return RecheckState{Status: StatusActive} }

func TestRecheckUnknownChangesNothingButTheSchedule(t *testing.T) {
	r := RecheckRules{Every: 6 * time.Hour, Mode: RecheckAuto, Confirm: 1, ConfirmWindow: time.Nanosecond, AutoSuspendNotFound: true}
	st := RecheckState{Status: StatusFlagged, StatusBy: SetByRecheck, Definitive: 2, FirstDefinitiveAt: now.Add(-time.Hour), ExpiresAt: tp(now.Add(-time.Hour))}
	at := now
	var waits []time.Duration
	for range 10 {
		for _, res := range []CheckResult{
			{Outcome: CheckUnknown, At: at},
			{Outcome: CheckInvalid, Reason: "domain_not_allowed", At: at},
			{Outcome: CheckInvalid, Reason: "wrong_product", At: at},
		} {
			tr := r.Next(st, res, false, 0)
			if tr.Event != "" || tr.Next.Status != st.Status || tr.Next.StatusBy != st.StatusBy ||
				tr.Next.Definitive != st.Definitive || tr.Next.ExpiresAt != st.ExpiresAt {
				t.Fatalf("unknown result %+v changed %+v into %+v (%s)", res, st, tr.Next, tr.Event)
			}
			waits = append(waits, tr.Next.NextCheckAt.Sub(at))
			st = tr.Next
		}
	}
	if waits[0] != FirstBackoff || waits[1] != 2*FirstBackoff || waits[2] != 4*FirstBackoff {
		t.Fatalf("backoff %v, want doubling from %v", waits[:3], FirstBackoff)
	}
	if last := waits[len(waits)-1]; last != r.Every {
		t.Fatalf("backoff capped at %v, want the interval %v", last, r.Every)
	}
}

// Issue 20, contract item 2: manual mode flags on the first definitive
// answer; no fixed span waits on top of the options.
func TestRecheckManualFlagsAndValidReinstates(t *testing.T) {
	r := RecheckRules{Every: 6 * time.Hour}
	tr := r.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonRefunded, At: now}, false, 0)
	if tr.Next.Status != StatusFlagged || tr.Event != EventFlagged || tr.Next.Definitive != 1 {
		t.Fatalf("manual refund, first answer: %+v %s; want flagged at once", tr.Next, tr.Event)
	}
	for range 20 { // manual never suspends
		tr = r.Next(tr.Next, CheckResult{Outcome: CheckInvalid, Reason: ReasonRefunded, At: now.Add(30 * 24 * time.Hour)}, false, 0)
		if tr.Next.Status != StatusFlagged || tr.Event != "" {
			t.Fatalf("manual: %+v %s", tr.Next, tr.Event)
		}
	}
	tr = r.Next(tr.Next, CheckResult{Outcome: CheckValid, At: now}, false, 0)
	if tr.Next.Status != StatusActive || tr.Event != EventReinstated || tr.Next.Definitive != 0 {
		t.Fatalf("valid on flagged: %+v %s", tr.Next, tr.Event)
	}
	if got := tr.Next.NextCheckAt.Sub(now); got != r.Every {
		t.Fatalf("next check in %v, want %v", got, r.Every)
	}
}

func TestRecheckAutoConfirmRules(t *testing.T) {
	r := RecheckRules{Every: 6 * time.Hour, Mode: RecheckAuto} // confirm 3 over 72h
	st := active()
	at := now
	var events []string
	for i := range 20 {
		tr := r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: at}, false, 0)
		if tr.Event != "" {
			events = append(events, tr.Event)
		}
		st = tr.Next
		if st.Status == StatusSuspended {
			if at.Sub(now) < 72*time.Hour || i < 2 {
				t.Fatalf("suspended after %d results over %v", i+1, at.Sub(now))
			}
			break
		}
		at = at.Add(6 * time.Hour)
	}
	if st.Status != StatusSuspended || st.StatusBy != SetByRecheck {
		t.Fatalf("auto mode never suspended: %+v", st)
	}
	if len(events) != 2 || events[0] != EventFlagged || events[1] != EventSuspended {
		t.Fatalf("events %v", events)
	}
	// A valid answer undoes the recheck's own suspension.
	tr := r.Next(st, CheckResult{Outcome: CheckValid, At: at}, false, 0)
	if tr.Next.Status != StatusActive || tr.Event != EventReinstated {
		t.Fatalf("valid after auto suspension: %+v %s", tr.Next, tr.Event)
	}
	// But never the author's.
	byAdmin := RecheckState{Status: StatusSuspended, StatusBy: "admin"}
	if tr := r.Next(byAdmin, CheckResult{Outcome: CheckValid, At: at}, false, 0); tr.Next.Status != StatusSuspended || tr.Event != "" {
		t.Fatalf("valid lifted the author's suspension: %+v", tr.Next)
	}
}

func TestRecheckConfirmIsConsecutive(t *testing.T) {
	r := RecheckRules{Every: 6 * time.Hour, Mode: RecheckAuto, Confirm: 3, ConfirmWindow: 12 * time.Hour}
	st := active()
	at := now
	for i := range 40 {
		res := CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: at}
		if i%2 == 1 {
			res = CheckResult{Outcome: CheckValid, At: at}
		}
		st = r.Next(st, res, false, 0).Next
		if st.Status == StatusSuspended {
			t.Fatalf("suspended by alternating answers at %d", i)
		}
		at = at.Add(6 * time.Hour)
	}
	// An unknown in between neither resets nor counts.
	st = active()
	at = now
	for _, o := range []string{CheckInvalid, CheckUnknown, CheckInvalid, CheckUnknown, CheckInvalid} {
		st = r.Next(st, CheckResult{Outcome: o, Reason: ReasonRevoked, At: at}, false, 0).Next
		at = at.Add(6 * time.Hour)
	}
	if st.Status != StatusSuspended || st.Definitive != 3 {
		t.Fatalf("three definitive results over 24h with unknowns between: %+v", st)
	}
}

func TestRecheckNotFoundNeedsOptIn(t *testing.T) {
	r := RecheckRules{Every: time.Hour, Mode: RecheckAuto, Confirm: 1, ConfirmWindow: time.Nanosecond}
	st := active()
	for i := range 50 {
		st = r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonNotFound, At: now.Add(time.Duration(i) * time.Hour)}, false, 0).Next
	}
	if st.Status != StatusFlagged {
		t.Fatalf("not_found without auto_suspend_not_found: %s, want flagged", st.Status)
	}
	r.AutoSuspendNotFound = true
	st = r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonNotFound, At: now.Add(60 * time.Hour)}, false, 0).Next
	if st.Status != StatusSuspended {
		t.Fatalf("not_found with auto_suspend_not_found: %s", st.Status)
	}
}

// The guard holds what a definitive answer would do (a flag or a
// suspension): a mass event is one alert, not a flag per licence.
func TestRecheckGuardHoldsSuspension(t *testing.T) {
	r := RecheckRules{Mode: RecheckAuto, Confirm: 1}
	tr := r.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonRefunded, At: now}, true, 0)
	if tr.Next.Status != StatusActive || !tr.Held || tr.Event != "" || tr.Next.Definitive != 1 {
		t.Fatalf("guard tripped: %+v", tr)
	}
	manual := RecheckRules{Mode: RecheckManual}
	tr = manual.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonNotFound, At: now}, true, 0)
	if tr.Next.Status != StatusActive || !tr.Held || tr.Event != "" {
		t.Fatalf("guard tripped, manual: %+v", tr)
	}
	flagged := RecheckState{Status: StatusFlagged, StatusBy: SetByRecheck, Definitive: 1, FirstDefinitiveAt: now}
	if tr := manual.Next(flagged, CheckResult{Outcome: CheckInvalid, Reason: ReasonNotFound, At: now}, true, 0); tr.Held {
		t.Fatalf("a flagged licence in manual mode: nothing to hold: %+v", tr)
	}
	tr = r.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonRefunded, At: now}, false, 0)
	if tr.Next.Status != StatusSuspended || tr.Held || tr.Event != EventSuspended {
		t.Fatalf("confirm 1, guard clear: %+v; want suspended on the first answer", tr)
	}
}

// confirm 1 suspends on the first definitive answer, whatever the window;
// confirm n needs n answers spanning the window.
func TestRecheckConfirmOneIgnoresTheWindow(t *testing.T) {
	r := RecheckRules{Mode: RecheckAuto, Confirm: 1, ConfirmWindow: 72 * time.Hour}
	if tr := r.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: now}, false, 0); tr.Next.Status != StatusSuspended {
		t.Fatalf("confirm 1: %+v", tr)
	}
	r.Confirm = 2
	st := r.Next(active(), CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: now}, false, 0).Next
	st = r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: now.Add(71 * time.Hour)}, false, 0).Next
	if st.Status != StatusFlagged {
		t.Fatalf("confirm 2, answers 71h apart: %s, want flagged", st.Status)
	}
	st = r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonRevoked, At: now.Add(72 * time.Hour)}, false, 0).Next
	if st.Status != StatusSuspended {
		t.Fatalf("confirm 2, answers spanning 72h: %s, want suspended", st.Status)
	}
}

func TestRecheckExpiry(t *testing.T) {
	r := RecheckRules{Every: 168 * time.Hour, Mode: RecheckManual}
	exp := now.Add(24 * time.Hour)
	st := RecheckState{Status: StatusActive, ExpiresAt: &exp}
	// A valid check before the expiry schedules the next at the expiry.
	tr := r.Next(st, CheckResult{Outcome: CheckValid, ExpiresAt: &exp, At: now}, false, 0)
	if !tr.Next.NextCheckAt.Equal(exp) {
		t.Fatalf("next check %v, want the expiry %v", tr.Next.NextCheckAt, exp)
	}
	// At expiry, an unknown answer changes nothing (the gate serves until
	// the grace ends).
	after := exp.Add(time.Minute)
	if tr := r.Next(st, CheckResult{Outcome: CheckUnknown, At: after}, false, 0); tr.Next.Status != StatusActive {
		t.Fatalf("unknown at expiry: %+v", tr.Next)
	}
	if got := r.ServesUntil(exp); !got.Equal(exp.Add(DefaultExpiryGrace)) {
		t.Fatalf("ServesUntil %v", got)
	}
	// The source confirms the expiry: expired, in manual mode too.
	tr = r.Next(st, CheckResult{Outcome: CheckInvalid, Reason: ReasonExpired, At: after}, false, 0)
	if tr.Next.Status != StatusExpired || tr.Event != EventExpired {
		t.Fatalf("confirmed expiry: %+v %s", tr.Next, tr.Event)
	}
	// The buyer renewed: a later expiry is a renewal and stays active.
	renewed := exp.AddDate(1, 0, 0)
	tr = r.Next(st, CheckResult{Outcome: CheckValid, ExpiresAt: &renewed, At: after}, false, 0)
	if tr.Next.Status != StatusActive || tr.Event != EventRenewed || !tr.Next.ExpiresAt.Equal(renewed) {
		t.Fatalf("renewal: %+v %s", tr.Next, tr.Event)
	}
	// A recheck-set expiry is undone by a renewal seen later.
	expired := RecheckState{Status: StatusExpired, StatusBy: SetByRecheck, ExpiresAt: &exp}
	if tr := r.Next(expired, CheckResult{Outcome: CheckValid, ExpiresAt: &renewed, At: after}, false, 0); tr.Next.Status != StatusActive || tr.Event != EventReinstated {
		t.Fatalf("renewal after expiry: %+v %s", tr.Next, tr.Event)
	}
}

func TestRecheckJitterSpreadsWithinATenth(t *testing.T) {
	r := RecheckRules{Every: 10 * time.Hour}
	for _, j := range []float64{0, 0.5, 0.999} {
		d := r.Next(active(), CheckResult{Outcome: CheckValid, At: now}, false, j).Next.NextCheckAt.Sub(now)
		if d > 10*time.Hour || d < 9*time.Hour {
			t.Fatalf("jitter %v: next in %v", j, d)
		}
	}
}

func TestGuard(t *testing.T) {
	var g Guard
	at := now
	for i := range 1000 { // 3% invalid: below the ratio
		g.Observe(at, i%100 < 3)
	}
	if g.Tripped(at) {
		t.Fatal("3% tripped the guard")
	}
	for range 10 {
		g.Observe(at, true) // 40 of 1010: still 4%
	}
	if g.Tripped(at) {
		t.Fatal("4% tripped the guard")
	}
	for range 30 {
		g.Observe(at, true)
	}
	if !g.Tripped(at) {
		t.Fatalf("70 of 1040 did not trip the guard")
	}
	// Below the minimum nothing trips, whatever the ratio.
	var small Guard
	for range 19 {
		small.Observe(at, true)
	}
	if small.Tripped(at) {
		t.Fatal("19 invalid results tripped the guard")
	}
	// An hour later the short window has moved on; the day remembers.
	if c, _ := g.Counts(at.Add(61 * time.Minute)); c != 0 {
		t.Fatalf("the short window remembers past its hour: %d checks", c)
	}
	if !g.Tripped(at.Add(61 * time.Minute)) {
		t.Fatal("the day window forgot within the day")
	}
	if g.Tripped(at.Add(25 * time.Hour)) {
		t.Fatal("the guard remembers past its day")
	}
	if c, _ := g.Counts(at.Add(30 * time.Minute)); c != 1040 {
		t.Fatalf("counts half an hour on: %d", c)
	}
}

// TestGuardDaySeesSpreadInvalids: 10% invalid answers spread evenly over a
// day never reach the minimum within an hour, but trip the day window.
func TestGuardDaySeesSpreadInvalids(t *testing.T) {
	var g Guard
	for i := range 400 { // 400 checks over 24h, 40 of them invalid
		at := now.Add(time.Duration(i) * 24 * time.Hour / 400)
		g.Observe(at, i%10 == 0)
		if c, inv := g.Counts(at); inv >= DefaultGuardMin {
			t.Fatalf("an hour holds %d of %d: the scenario is not spread", inv, c)
		}
	}
	end := now.Add(24*time.Hour - time.Minute)
	if !g.Tripped(end) {
		c, inv := g.DayCounts(end)
		t.Fatalf("10%% of a day's checks (%d of %d) did not trip the guard", inv, c)
	}
	// One refund among a day of good answers does not.
	var quiet Guard
	for i := range 400 {
		quiet.Observe(now.Add(time.Duration(i)*time.Minute), i == 7)
	}
	if quiet.Tripped(now.Add(400 * time.Minute)) {
		t.Fatal("a single invalid answer tripped the guard")
	}
}

// TestGuardWarm: a guard is warm a day after it began watching.
func TestGuardWarm(t *testing.T) {
	var g Guard
	if g.Warm(now) || !g.WarmAt().IsZero() {
		t.Fatal("a guard that saw nothing is warm")
	}
	g.Begin(now)
	g.Observe(now.Add(time.Hour), false)
	if g.Warm(now.Add(24*time.Hour - time.Second)) {
		t.Fatal("warm before a day")
	}
	if !g.Warm(now.Add(24*time.Hour)) || !g.WarmAt().Equal(now.Add(24*time.Hour)) {
		t.Fatal("not warm after a day")
	}
}

func TestRecheckModeOffIsNeverDue(t *testing.T) {
	r := RecheckRules{Mode: RecheckOff, Every: time.Hour}
	if at := r.FirstCheck(now, nil, 0); !at.IsZero() {
		t.Fatalf("mode off: first check %v", at)
	}
	for _, res := range []CheckResult{{Outcome: CheckValid, At: now}, {Outcome: CheckUnknown, At: now}, {Outcome: CheckInvalid, Reason: ReasonRefunded, At: now}} {
		if tr := r.Next(active(), res, false, 0); !tr.Next.NextCheckAt.IsZero() {
			t.Fatalf("mode off, %s: next check %v", res.Outcome, tr.Next.NextCheckAt)
		}
	}
	on := RecheckRules{Every: 10 * time.Hour}
	if at := on.FirstCheck(now, nil, 0.5); at.Sub(now) != 10*time.Hour-30*time.Minute {
		t.Fatalf("first check %v", at.Sub(now))
	}
	exp := now.Add(time.Hour)
	if at := on.FirstCheck(now, &exp, 0); !at.Equal(exp) {
		t.Fatalf("first check %v, want the expiry", at)
	}
}

func TestGuardClearIsWellBelow(t *testing.T) {
	var g Guard
	for i := range 400 {
		g.Observe(now, i%10 == 0) // 40 of 400: tripped
	}
	if !g.Tripped(now) || g.Clear(now) {
		t.Fatal("10% not tripped, or clear")
	}
	for range 400 {
		g.Observe(now, false) // 40 of 800: 5%, no longer tripped, not clear
	}
	if g.Tripped(now) || g.Clear(now) {
		t.Fatalf("5%%: tripped %v clear %v; want neither", g.Tripped(now), g.Clear(now))
	}
	for range 800 {
		g.Observe(now, false) // 40 of 1600: 2.5%, clear
	}
	if !g.Clear(now) {
		t.Fatal("2.5% not clear")
	}
}

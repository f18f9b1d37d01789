package policy

import (
	"slices"
	"time"
)

// Idle reports whether an active installation has gone unused for the
// rules' ReleaseIdle (0: never): its last use, or its creation when it was
// never seen, is that long ago. An idle installation holds no slot: the
// activation that needs its slot releases it, and so does the sweep.
func (r Rules) Idle(in Installation, now time.Time) bool {
	if r.ReleaseIdle <= 0 || !in.Active {
		return false
	}
	last := in.LastSeenAt
	if last.IsZero() || last.Before(in.CreatedAt) {
		last = in.CreatedAt
	}
	return now.Sub(last) >= r.ReleaseIdle
}

// IdleInstallations returns the ids of the idle installations, longest
// unused first.
func (r Rules) IdleInstallations(installations []Installation, now time.Time) []string {
	var idle []Installation
	for _, in := range installations {
		if r.Idle(in, now) {
			idle = append(idle, in)
		}
	}
	slices.SortStableFunc(idle, func(a, b Installation) int { return lastUse(a).Compare(lastUse(b)) })
	ids := make([]string, 0, len(idle))
	for _, in := range idle {
		ids = append(ids, in.ID)
	}
	return ids
}

func lastUse(in Installation) time.Time {
	if in.LastSeenAt.After(in.CreatedAt) {
		return in.LastSeenAt
	}
	return in.CreatedAt
}

// releasing returns installations with those named in ids ended at now.
func releasing(installations []Installation, ids []string, now time.Time) []Installation {
	out := slices.Clone(installations)
	for i := range out {
		if slices.Contains(ids, out[i].ID) {
			out[i].Active, out[i].EndedAt = false, now
		}
	}
	return out
}

// DecideActivationReleasing is DecideActivation under release_idle: idle
// installations do not count, so an activation refused for want of a slot
// or a free place is decided again without them; when it then succeeds,
// release names the idle ones among the holders, which the caller marks
// released. Without ReleaseIdle it is DecideActivation.
func (r Rules) DecideActivationReleasing(l License, installations []Installation, domain, exclude string, now time.Time) (d Decision, release []string, ref *Refusal) {
	d, ref = r.DecideActivation(l, installations, domain, exclude, now)
	if ref == nil || ref.Code != CodeActivationLimit || r.ReleaseIdle <= 0 {
		return d, nil, ref
	}
	idle := r.IdleInstallations(ref.Holders, now)
	if len(idle) == 0 {
		return d, nil, ref
	}
	d, ref = r.DecideActivation(l, releasing(installations, idle, now), domain, exclude, now)
	if ref != nil {
		return Decision{}, nil, ref
	}
	return d, idle, nil
}

package gateway

import (
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// observeLeak records an activation attempt's leak sightings on lic (SPEC
// section 4: distinct production domains attempted, refused ones
// included, and re-activations from distinct client networks). It reports
// whether the sightings changed enough to be written and, when the attempt
// takes the licence past its product's leak_threshold, why to lock it.
//
// A staging attempt from a network none of the licence's installations is
// known from counts as a domain too (issue 20, L2): a free staging answer
// tells whoever holds a leaked code that the guessed parent is the
// buyer's domain, so guessing is bounded by the threshold.
func observeLeak(p *Product, lic *store.License, st *store.LicenseState, installs []policy.Installation, domain, clientIP string, otherNet bool, now time.Time) (bool, string) {
	class := p.Rules.Classify(domain, installs)
	counts := class == policy.ClassProduction || class == policy.ClassStaging && stagingFromElsewhere(st, clientIP)
	a := policy.Attempt{Domain: domain, Production: counts, At: now}
	if otherNet {
		a.Network = policy.ClientNetwork(clientIP)
	}
	seen, changed, lock := p.Leak.Watch(policySightings(lic.Sightings), a, p.Rules.Limit(policyLicense(lic)))
	if changed {
		lic.Sightings = storeSightings(seen)
	}
	return changed, lock
}

// Re-activations of one installation (issue 20, N5): each supersedes its
// tokens and used to cost a refresh family, an audit and an outbox entry
// and an idempotency record, unthrottled. At most this many per window:
// a buyer reinstalling from its own network has room to spare, and a
// leaked code's holder from other networks cannot use that room up.
const (
	reactivationWindow   = time.Hour
	homeReactivations    = 20
	foreignReactivations = 5
)

// countReactivation counts one re-activation of ins (foreign: from
// another network than its own) in its window, or returns how long until
// the window has room again (nothing counted then).
func countReactivation(ins *store.Installation, foreign bool, now time.Time) time.Duration {
	if ins.ReactivationsSince.IsZero() || now.Sub(ins.ReactivationsSince) >= reactivationWindow {
		ins.ReactivationsSince, ins.HomeReactivations, ins.ForeignReactivations = now, 0, 0
	}
	count, limit := &ins.HomeReactivations, homeReactivations
	if foreign {
		count, limit = &ins.ForeignReactivations, foreignReactivations
	}
	if *count >= limit {
		return ins.ReactivationsSince.Add(reactivationWindow).Sub(now)
	}
	*count++
	return 0
}

// homeIP is the address an installation is known from: where it was
// created or last re-activated from its own network (the last client
// address on records kept before there was one).
func homeIP(ins *store.Installation) string {
	if ins.HomeIP != "" {
		return ins.HomeIP
	}
	return ins.ClientIP
}

// retryAfter is a wait as a Retry-After gives it: whole seconds, at least
// one (a refusal always says when to come back).
func retryAfter(d time.Duration) time.Duration {
	return max((d + time.Second - 1).Truncate(time.Second), time.Second) // never early
}

// foreignTo reports whether a re-activation from ip comes from another
// network than home. An installation known from no address (a record
// made without one) has no home to defend: the re-activation adopts it.
func foreignTo(home, ip string) bool {
	return home != "" && otherNetwork(home, ip)
}

// settleHome makes a foreign re-activation's network the installation's
// home once it went unchallenged for its cooldown.
func settleHome(ins *store.Installation, now time.Time) {
	if !ins.ForeignUntil.IsZero() && !now.Before(ins.ForeignUntil) {
		ins.HomeIP, ins.ForeignUntil = ins.ClientIP, time.Time{}
	}
}

// contested reports whether an installation's current tokens came from a
// foreign re-activation still within its cooldown: they may not
// deactivate or move it.
func contested(ins *store.Installation, now time.Time) bool {
	return !ins.ForeignUntil.IsZero() && now.Before(ins.ForeignUntil)
}

// homeReactivation reports whether an activation of domain from clientIP
// re-activates an active installation from the network it is known from.
func homeReactivation(st *store.LicenseState, domain, clientIP string, now time.Time) bool {
	if policy.ClientNetwork(clientIP) == "" {
		return false
	}
	for i := range st.Installations {
		in := st.Installations[i] // a copy: settling here decides, it does not write
		if in.Active() && in.Domain == domain {
			settleHome(&in, now)
			return homeIP(&in) != "" && !otherNetwork(homeIP(&in), clientIP)
		}
	}
	return false
}

// stagingFromElsewhere reports whether a staging domain is attempted from
// a network that none of the licence's active installations is known from
// (its home or its last address): the buyer's own staging copies come
// from where its sites are; a guess of the buyer's domain does not.
func stagingFromElsewhere(st *store.LicenseState, clientIP string) bool {
	if st == nil || policy.ClientNetwork(clientIP) == "" {
		return false
	}
	for i := range st.Installations {
		in := &st.Installations[i]
		if in.Active() && (!otherNetwork(homeIP(in), clientIP) || !otherNetwork(in.ClientIP, clientIP)) {
			return false
		}
	}
	return true
}

// otherNetwork reports whether a re-activation from ip comes from another
// client network than the installation's previous address.
func otherNetwork(previous, ip string) bool {
	n := policy.ClientNetwork(ip)
	return n != "" && n != policy.ClientNetwork(previous)
}

// pruneInstallations drops the ended installations the licence record may
// forget (policy.Prunable): the record stays bounded however many
// installations come and go, and the audit log keeps their history.
func pruneInstallations(st *store.LicenseState, now time.Time) {
	ids := policy.Prunable(policyInstallations(st.Installations), now)
	if len(ids) == 0 {
		return
	}
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	kept := make([]store.Installation, 0, len(st.Installations)-len(ids))
	for _, in := range st.Installations {
		if !drop[in.ID] {
			kept = append(kept, in)
		}
	}
	st.Installations = kept
}

func policySightings(in []store.Sighting) []policy.Sighting {
	out := make([]policy.Sighting, len(in))
	for i, s := range in {
		out[i] = policy.Sighting{Kind: s.Kind, Value: s.Value, At: s.At}
	}
	return out
}

func storeSightings(in []policy.Sighting) []store.Sighting {
	out := make([]store.Sighting, len(in))
	for i, s := range in {
		out[i] = store.Sighting{Kind: s.Kind, Value: s.Value, At: s.At}
	}
	return out
}

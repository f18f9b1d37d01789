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
func observeLeak(p *Product, lic *store.License, installs []policy.Installation, domain, clientIP string, otherNet bool, now time.Time) (bool, string) {
	a := policy.Attempt{Domain: domain, Production: policy.Classify(domain, installs) == policy.ClassProduction, At: now}
	if otherNet {
		a.Network = policy.ClientNetwork(clientIP)
	}
	seen, changed, lock := p.Leak.Watch(policySightings(lic.Sightings), a, p.Rules.Limit(policyLicense(lic)))
	if changed {
		lic.Sightings = storeSightings(seen)
	}
	return changed, lock
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

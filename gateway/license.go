package gateway

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// The licence record: what a stored licence's fields mean to the gateway,
// and the licence and its installations in policy's terms.

// statusBySource marks a status set by the key's own source (the author's
// key file), which the same source may lift again.
const statusBySource = "source"

// statusForReason is the stored status a definitive answer from a local
// source sets on a stored licence.
func statusForReason(r upstreams.Reason) string {
	switch r {
	case upstreams.Expired:
		return store.LicenseExpired
	case upstreams.Suspended, upstreams.Disabled:
		return store.LicenseSuspended
	default:
		return store.LicenseRevoked
	}
}

// licenseFacts is what a verification can change about a stored licence.
func licenseFacts(l *store.License) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%t|%d", l.Product, l.Status, l.StatusBy, l.Type, l.LicensedTo,
		timeFact(l.ExpiresAt), timeFact(l.SupportUntil), l.Retired, l.ActivationsLimit)
}

func timeFact(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// policyLicense is a licence in policy's terms without an expiry grace:
// for the slot limit, which does not look at the licence's standing, or
// for a caller that decides the grace itself (decideActivation).
func policyLicense(l *store.License) policy.License {
	return policy.License{Status: l.Status, Locked: l.Locked, Type: l.Type, ExpiresAt: l.ExpiresAt, Limit: l.ActivationsLimit}
}

// policyLicense is a licence in policy's terms with its product's expiry
// grace, for its standing.
func (s *Service) policyLicense(l *store.License) policy.License {
	pl := policyLicense(l)
	pl.ExpiryGrace = s.recheckRules(l.Product).ExpiryGrace
	return pl
}

// firstCheck is a freshly verified licence's next recheck: the one it has,
// else one interval on (none in mode off), and never after its expiry.
func (s *Service) firstCheck(lic *store.License, product string, now time.Time) time.Time {
	rules := s.recheckRules(product)
	next := lic.NextCheckAt
	if next.IsZero() {
		next = rules.FirstCheck(now, lic.ExpiresAt, rand.Float64())
	}
	if rules.Mode == policy.RecheckOff {
		return time.Time{}
	}
	if e := lic.ExpiresAt; e != nil && e.After(now) && e.Before(next) {
		next = *e
	}
	return next
}

// policyInstallations is a licence's installations in policy's terms. An
// ended one ends at its deactivation, or at its last update for a record
// that has none.
func policyInstallations(ins []store.Installation) []policy.Installation {
	out := make([]policy.Installation, 0, len(ins))
	for _, in := range ins {
		pi := policy.Installation{
			ID: in.ID, Domain: in.Domain, Class: policy.InstallClass(in.InstallClass), Active: in.Active(),
			Label: in.Label, CreatedAt: in.CreatedAt, LastSeenAt: in.LastSeenAt,
		}
		if !pi.Active {
			pi.EndedAt = in.DeactivatedAt
			if pi.EndedAt.IsZero() { // cloned, or ended before DeactivatedAt was kept
				pi.EndedAt = in.UpdatedAt
			}
		}
		out = append(out, pi)
	}
	return out
}

package gateway

import (
	"fmt"
	"math/rand/v2"
	"slices"
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

// recordScope is how much of a licence a source's valid record speaks
// for, which decides what its empty fields mean (mergeRecord).
type recordScope int

const (
	// wholeRecord is an activation's verification: the source's whole
	// answer about the key, so an empty type or buyer's name is the
	// licence's own and replaces the stored one.
	wholeRecord recordScope = iota
	// recheckRecord is a recheck's answer: a later read, often by
	// another call than the activation's (a licence read by its vendor
	// id), that need not carry the type or the buyer's name. Empty there
	// means "not said": a recheck never blanks what was stored.
	recheckRecord
)

// mergeRecord copies a source's valid record onto a stored licence: the
// one place an answer's record becomes licence fields, for an activation
// (mergeLicense) and a recheck (applyCheck) alike. It reports whether the
// record renews the support period (a later support_until than the one
// stored), which a recheck announces.
//
// What a valid answer does to the licence's status and next check is not
// the record's to say: an activation lifts a status its own source set
// and schedules the first check; a recheck has policy.RecheckRules.Next
// decide both. Nor is the product: an activation sets the one it
// resolved (productFor), and a recheck never moves a licence to another.
func mergeRecord(lic *store.License, r upstreams.Record, scope recordScope, now time.Time) (supportRenewed bool) {
	supportRenewed = lic.SupportUntil != nil && r.SupportUntil != nil && r.SupportUntil.After(*lic.SupportUntil)
	if r.Type != "" || scope == wholeRecord {
		lic.Type = r.Type
	}
	if r.LicensedTo != "" || scope == wholeRecord {
		lic.LicensedTo = r.LicensedTo
	}
	lic.ExpiresAt, lic.SupportUntil, lic.Retired = r.ExpiresAt, r.SupportUntil, r.Retired
	lic.ActivationsLimit = r.ActivationsLimit
	if r.VendorID != "" {
		lic.VendorID = r.VendorID // an answer without one keeps the id recorded
	}
	lic.Refs = addRefs(lic.Refs, lic.Source, r.Refs)
	lic.VerifiedAt = now
	return supportRenewed
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
	return dueWithDates(next, lic, now)
}

// dateSlack is how long after a licence's support_until it is checked:
// long enough for the marketplace to show the renewal, or the lapse.
const dateSlack = time.Minute

// dueWithDates is a licence's next check, next, brought forward to its
// expires_at, or to just after its support_until, when one comes first
// (SPEC section 7, fresh without polling): an expiry is asked about when
// it passes, and a buyer who renewed support is refused by require
// support_active only until the check just after the old date. Never
// (zero: mode off) stays never, and a date already passed is no reason
// to check again.
func dueWithDates(next time.Time, lic *store.License, now time.Time) time.Time {
	if next.IsZero() {
		return next
	}
	if e := lic.ExpiresAt; e != nil && e.After(now) && e.Before(next) {
		next = *e
	}
	if su := lic.SupportUntil; su != nil && su.After(now) && su.Add(dateSlack).Before(next) {
		next = su.Add(dateSlack)
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
			Label: in.Label, CreatedAt: in.CreatedAt, LastSeenAt: in.LastSeenAt, Marked: in.MarkedStaging,
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

// maxRefs bounds the lookup terms a licence keeps: a purchase has a few
// ids (an order, a subscription, the vendor's licence id).
const maxRefs = 8

// addRefs adds the lookup terms of a record's vendor ids to a licence's:
// a vendor's id of a purchase does not change, so an answer without one
// keeps those recorded.
func addRefs(refs []string, source string, ids []upstreams.VendorID) []string {
	for _, id := range ids {
		term := store.RefTerm(source, id.Kind, id.ID)
		if len(refs) < maxRefs && !slices.Contains(refs, term) {
			refs = append(refs, term)
		}
	}
	return refs
}

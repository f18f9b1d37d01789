package gateway

import (
	"context"
	"slices"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// Entitlements (SPEC section 14) are named capabilities an installation
// may use: its product's for its licence's type, plus each attached
// add-on's. A token carries them as its ent claim when it is issued; the
// gate decides on the current ones (require entitlement), from the status
// cache, so an add-on refunded at noon grants nothing at 12:00:01 on any
// instance, whatever its tokens say.

// typeEntitlements are product's entitlements for a licence of type typ:
// the type's own list, else the "*" list. The slice is the product's: do
// not modify it.
func (s *Service) typeEntitlements(product, typ string) []string {
	p := s.product(product)
	if p == nil {
		return nil
	}
	if ents, ok := p.Entitlements[typ]; ok {
		return ents
	}
	return p.Entitlements["*"]
}

// addonHolds reports whether st (an add-on licence's state) still grants
// ref to the base installation baseID: the add-on's installation is
// active and attached to it, and its licence is in good standing.
func (s *Service) addonHolds(st *store.LicenseState, ref store.AddonRef, baseID string, now time.Time) bool {
	if st == nil || st.License == nil {
		return false
	}
	in := st.Installation(ref.InstallationID)
	if in == nil || !in.Active() || in.Base != baseID {
		return false
	}
	return policy.Standing(s.policyLicense(st.License), now) == nil
}

// entitlements lists, sorted and without repeats, what ins (of licence
// lic) may use now, reading its add-ons' licences from the store: what
// its next token's ent claim says.
func (s *Service) entitlements(ctx context.Context, lic *store.License, ins *store.Installation) ([]string, error) {
	out := slices.Clone(s.typeEntitlements(ins.Product, lic.Type))
	now := s.now()
	for _, ref := range ins.Addons {
		st, err := s.cfg.Store.LicenseState(ctx, ref.LicenseID)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		if s.addonHolds(st, ref, ins.ID, now) {
			out = append(out, s.typeEntitlements(ref.Product, st.License.Type)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// entitled reports whether a grant holds any of want, from the status
// cache: its product's entitlements first (no lookup), then its add-ons'
// (one cache read each, an add-on's change notice dropping it at once).
// An add-on licence the store cannot be asked about is an outage, not a
// "no".
func (s *Service) entitled(ctx context.Context, grant *Grant, want []string, maxStale time.Duration, now time.Time) (bool, error) {
	if containsAny(s.typeEntitlements(grant.Product, grant.Type), want) {
		return true, nil
	}
	for _, ref := range grant.addons {
		if !containsAny(s.addonEntitlementsAny(ref.Product), want) {
			continue
		}
		st, _, err := s.cache.GetStaleAt(ctx, ref.LicenseID, maxStale, now)
		if err != nil {
			s.obs.StoreError(OpStatusRead)
			return false, unavailable(detailGateUnavailable, err)
		}
		if s.addonHolds(st, ref, grant.InstallationID, now) && containsAny(s.typeEntitlements(ref.Product, st.License.Type), want) {
			return true, nil
		}
	}
	return false, nil
}

// grantEntitlements is entitlements for an admitted grant, from the
// status cache: the X-License-Entitlements header's list.
func (s *Service) grantEntitlements(ctx context.Context, grant *Grant, maxStale time.Duration, now time.Time) ([]string, error) {
	out := slices.Clone(s.typeEntitlements(grant.Product, grant.Type))
	for _, ref := range grant.addons {
		st, _, err := s.cache.GetStaleAt(ctx, ref.LicenseID, maxStale, now)
		if err != nil {
			s.obs.StoreError(OpStatusRead)
			return nil, unavailable(detailGateUnavailable, err)
		}
		if s.addonHolds(st, ref, grant.InstallationID, now) {
			out = append(out, s.typeEntitlements(ref.Product, st.License.Type)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// addonEntitlementsAny are every entitlement an add-on product may grant,
// whatever the licence's type: a cheap filter before a cache read.
func (s *Service) addonEntitlementsAny(product string) []string {
	p := s.product(product)
	if p == nil {
		return nil
	}
	return p.allEntitlements
}

func containsAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

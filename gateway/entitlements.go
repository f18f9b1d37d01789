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

// stateReader reads an add-on licence's state: from the store (a token
// being signed) or the status cache (the gate).
type stateReader func(ctx context.Context, licenseID string) (*store.LicenseState, error)

// heldAddonEntitlements lists the entitlements of refs (the add-ons of
// the installation baseID) that still hold, read with read. With want,
// an add-on whose product can grant none of want is not read at all.
func (s *Service) heldAddonEntitlements(ctx context.Context, baseID string, refs []store.AddonRef, want []string, read stateReader, now time.Time) ([]string, error) {
	var out []string
	for _, ref := range refs {
		if want != nil && !containsAny(s.addonEntitlementsAny(ref.Product), want) {
			continue
		}
		st, err := read(ctx, ref.LicenseID)
		if err != nil {
			return nil, err
		}
		if s.addonHolds(st, ref, baseID, now) {
			out = append(out, s.typeEntitlements(ref.Product, st.License.Type)...)
		}
	}
	return out, nil
}

// withBase is the product's entitlements for typ plus more, sorted and
// without repeats.
func (s *Service) withBase(product, typ string, more []string) []string {
	out := append(slices.Clone(s.typeEntitlements(product, typ)), more...)
	slices.Sort(out)
	return slices.Compact(out)
}

// storeReader reads from the store: what a token is signed on.
func (s *Service) storeReader(ctx context.Context, id string) (*store.LicenseState, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return st, nil
}

// cacheReader reads from the status cache, as the gate does.
func (s *Service) cacheReader(maxStale time.Duration, now time.Time) stateReader {
	return func(ctx context.Context, id string) (*store.LicenseState, error) {
		st, _, err := s.cache.GetStaleAt(ctx, id, maxStale, now)
		if err != nil {
			s.obs.StoreError(OpStatusRead)
			return nil, unavailable(detailGateUnavailable, err)
		}
		return st, nil
	}
}

// entitlements lists, sorted and without repeats, what ins (of licence
// lic) may use now, reading its add-ons' licences from the store: what
// its next token's ent claim says.
func (s *Service) entitlements(ctx context.Context, lic *store.License, ins *store.Installation) ([]string, error) {
	more, err := s.heldAddonEntitlements(ctx, ins.ID, ins.Addons, nil, s.storeReader, s.now())
	if err != nil {
		return nil, err
	}
	return s.withBase(ins.Product, lic.Type, more), nil
}

// entitled reports whether a grant holds any of want, from the status
// cache: its product's entitlements first (no lookup), then its add-ons'
// (one cache read each of those that could grant one, an add-on's change
// notice dropping it at once). An add-on licence the store cannot be
// asked about is an outage, not a "no".
func (s *Service) entitled(ctx context.Context, grant *Grant, want []string, maxStale time.Duration, now time.Time) (bool, error) {
	if containsAny(s.typeEntitlements(grant.Product, grant.Type), want) {
		return true, nil
	}
	if len(grant.addons) == 0 {
		return false, nil
	}
	more, err := s.heldAddonEntitlements(ctx, grant.InstallationID, grant.addons, want, s.cacheReader(maxStale, now), now)
	return containsAny(more, want), err
}

// grantEntitlements is entitlements for an admitted grant, from the
// status cache: the X-License-Entitlements header's list.
func (s *Service) grantEntitlements(ctx context.Context, grant *Grant, maxStale time.Duration, now time.Time) ([]string, error) {
	var more []string
	if len(grant.addons) > 0 {
		var err error
		if more, err = s.heldAddonEntitlements(ctx, grant.InstallationID, grant.addons, nil, s.cacheReader(maxStale, now), now); err != nil {
			return nil, err
		}
	}
	return s.withBase(grant.Product, grant.Type, more), nil
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

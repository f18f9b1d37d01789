package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/licensegate/licensegate/store"
)

// Buyers (SPEC section 12): a buyer signed in to the portal owns the
// licences their sign-in proved (the purchases a marketplace listed for
// their account), and only those. A purchase code alone proves nothing: a
// leaked code's holder has it too.

// BuyerActor is a buyer as the audit log names them: buyer:<method>:<who>
// (buyer:envato:alice, buyer:email:3f2a9c...).
func BuyerActor(method, who string) string { return "buyer:" + method + ":" + who }

// OwnedLicences returns the ids of the stored licences that keys, listed
// for a buyer by source, are the keys of: each key's licence id is its
// keyed hash at the source, so no key is stored or compared in the clear.
// Keys that fit no format of the source, or whose licence was never
// activated, are skipped; products limits the answer to those products
// (none: every product served).
func (s *Service) OwnedLicences(ctx context.Context, source string, keys []string, products []string) ([]string, error) {
	src := s.cfg.Sources[source]
	if src == nil {
		return nil, nil
	}
	var ids []string
	for _, k := range keys {
		canon, err := src.CanonicalKey(k)
		if err != nil {
			continue
		}
		id := s.licenseID(source, canon)
		st, err := s.cfg.Store.LicenseState(ctx, id)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		lic := st.License
		if lic == nil || s.product(lic.Product) == nil || len(products) > 0 && !slices.Contains(products, lic.Product) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// OwnedLicence is a licence of a buyer's, with its installations: owned
// lists the licences their sign-in proved, and any other id is not found.
func (s *Service) OwnedLicence(ctx context.Context, owned []string, id string) (*LicenseDetail, error) {
	if !slices.Contains(owned, id) {
		return nil, ErrNotFound
	}
	return s.License(ctx, id)
}

// DeactivateOwned frees an installation of a licence the buyer owns and
// revokes its tokens, audited with the buyer as actor. An installation of
// another licence is not found, whatever its id.
func (s *Service) DeactivateOwned(ctx context.Context, actor string, owned []string, licenseID, installationID string) (*LicenseDetail, error) {
	if !slices.Contains(owned, licenseID) {
		return nil, ErrNotFound
	}
	find := func(st *store.LicenseState) (*store.Installation, error) {
		if ins := installationOf(st, installationID); ins != nil {
			return ins, nil
		}
		return nil, ErrNotFound
	}
	st, err := s.deactivate(ctx, licenseID, installationID, find, store.AuditEvent{Actor: actor, Reason: "deactivated by the buyer"})
	if err != nil {
		return nil, err
	}
	return s.detail(st), nil
}

// RefreshOwned is the portal's "I renewed my support": a recheck now of a
// licence the buyer owns, within its refresh_cooldown (AskRecheck). It
// says whether the source gave an answer.
func (s *Service) RefreshOwned(ctx context.Context, owned []string, licenseID string) (bool, error) {
	if !slices.Contains(owned, licenseID) {
		return false, ErrNotFound
	}
	return s.AskRecheck(ctx, licenseID)
}

// portals are the buyer portals' addresses, by product ("" for every
// product): set by each portal as it is provisioned.
type portals struct {
	mu   sync.RWMutex
	urls map[string]string
}

// SetPortal tells the service that a buyer portal at baseURL (its origin
// and base path) serves products (none: every product), so that
// activation_limit_reached carries the licence's portal_url.
func (s *Service) SetPortal(baseURL string, products []string) {
	s.portals.mu.Lock()
	defer s.portals.mu.Unlock()
	if s.portals.urls == nil {
		s.portals.urls = map[string]string{}
	}
	if len(products) == 0 {
		products = []string{""}
	}
	for _, p := range products {
		s.portals.urls[p] = strings.TrimSuffix(baseURL, "/")
	}
}

// portalURL is the page of a licence of product in its portal, or "".
func (s *Service) portalURL(product, licenseID string) string {
	s.portals.mu.RLock()
	defer s.portals.mu.RUnlock()
	base, ok := s.portals.urls[product]
	if !ok {
		base, ok = s.portals.urls[""]
	}
	if !ok {
		return ""
	}
	return base + "/licenses/" + licenseID
}

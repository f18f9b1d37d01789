package gateway

import (
	"context"
	"time"

	"github.com/licensegate/licensegate/tokens"
)

// Grant is what the gate forwards about an admitted request.
type Grant struct {
	InstallationID string
	LicenseID      string
	Product        string
	Domain         string
	Class          string
	Type           string
	SupportActive  bool
	// Stale is set when the licence's status came from a cache entry the
	// store could not refresh (on_store_error allow_stale).
	Stale bool
}

// Authorize decides whether verified claims are still admitted: the
// installation is active at the token's generation and the licence is in
// good standing. It reads the status cache, which refreshes a recently
// used licence in the background: the request waits on the store only when
// the cache holds nothing fresh or recently refreshable.
//
// maxStale is how long past its freshness a cached status may be served
// while the store is unreachable (on_store_error allow_stale; 0: deny).
func (s *Service) Authorize(ctx context.Context, c *tokens.Claims, maxStale time.Duration) (*Grant, error) {
	st, stale, err := s.cache.GetStale(ctx, c.License, maxStale)
	if err != nil {
		return nil, &Error{Code: CodeStoreUnavailable, Detail: "The licence service is temporarily unavailable.", RetryAfter: 5 * time.Second, Cause: err}
	}
	ins := installationOf(st, c.Subject)
	if ins == nil {
		return nil, invalidToken("The token does not belong to a known installation.", errNoInstallation)
	}
	now := s.now()
	if e := installationRefusal(st.License, ins, c.Generation, now); e != nil {
		return nil, e
	}
	return &Grant{
		InstallationID: ins.ID, LicenseID: st.License.ID, Product: ins.Product,
		Domain: ins.Domain, Class: ins.InstallClass, Type: st.License.Type,
		SupportActive: supportActive(st.License, now), Stale: stale,
	}, nil
}

// Invalidate drops a licence from the status cache (the change feed does
// this for changes the store announces).
func (s *Service) Invalidate(licenseID string) { s.cache.Invalidate(licenseID) }

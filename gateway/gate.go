package gateway

import (
	"context"
	"time"

	"github.com/licensegate/licensegate/tokens"
)

// Gate is the one admission path for access tokens: the gate handler and
// the endpoints an installation authenticates to with its access token go
// through it. Verification is local (signature, kid, exp, aud) and the
// licence's status comes from the in-process cache, so in steady state an
// admission does no I/O and allocates nothing.
type Gate struct {
	svc      *Service
	verifier *tokens.Verifier
}

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

// Gate returns the admission path for tokens of the given products (their
// aud), or of every configured product when products is empty. Each Gate
// keeps its own verified-token cache: build one per handler at provision.
func (s *Service) Gate(products []string) *Gate {
	if len(products) == 0 {
		products = s.cfg.ProductOrder
	}
	return &Gate{svc: s, verifier: tokens.NewVerifier(s.ring, s.issuer.Name(), products)}
}

// Admit verifies an access token and decides whether its installation is
// still admitted: active at the token's generation, its licence in good
// standing.
//
// maxStale is how long past its freshness a cached status may be served
// while the store is unreachable (on_store_error allow_stale; 0: deny).
func (g *Gate) Admit(ctx context.Context, rawToken string, maxStale time.Duration) (Grant, error) {
	c, err := g.verify(ctx, rawToken)
	if err != nil {
		g.svc.obs.GateDecision("", outcomeOf(err, OutcomeAdmitted))
		return Grant{}, err
	}
	grant, err := g.svc.authorize(ctx, c, maxStale)
	g.svc.obs.GateDecision(c.Audience, outcomeOf(err, OutcomeAdmitted))
	return grant, err
}

// Refused counts a request the gate refused before it had a token to
// admit (no Bearer credential): code is the refusal's public code.
func (g *Gate) Refused(code string) {
	if g != nil {
		g.svc.obs.GateDecision("", code)
	}
}

// verify checks an access token's signature and claims. Without signing
// keys (the store was down at start) it answers store_unavailable: an
// outage, not a bad token.
func (g *Gate) verify(ctx context.Context, rawToken string) (*tokens.Claims, error) {
	if err := g.svc.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	c, err := g.verifier.Verify(rawToken)
	if err != nil {
		return nil, invalidToken("The access token is not valid.", err)
	}
	return c, nil
}

// authorize decides on verified claims from the status cache, which
// refreshes a recently used licence in the background: the request waits
// on the store only when the cache holds nothing fresh or recently
// refreshable.
func (s *Service) authorize(ctx context.Context, c *tokens.Claims, maxStale time.Duration) (Grant, error) {
	st, stale, err := s.cache.GetStale(ctx, c.License, maxStale)
	if err != nil {
		s.obs.StoreError(OpStatusRead)
		return Grant{}, unavailable(detailGateUnavailable, err)
	}
	now := s.now()
	ins, refusal := s.admitted(credentialOf(c), st, now)
	if refusal != nil {
		return Grant{}, refusal
	}
	return Grant{
		InstallationID: ins.ID, LicenseID: st.License.ID, Product: ins.Product,
		Domain: ins.Domain, Class: ins.InstallClass, Type: st.License.Type,
		SupportActive: supportActive(st.License, now), Stale: stale,
	}, nil
}

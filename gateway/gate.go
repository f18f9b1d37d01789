package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/store"
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
	require  []Requirement
	quota    Quota
	counter  *quotaCounter // nil without quota
	// typeQuota are the quotas given per licence type (quota
	// regular=1000/d extended=10000/d), each with its period's counter;
	// a type without one has quota (none when its Limit is 0).
	typeQuota map[string]typeQuota
	// listEntitlements makes Admit fill Grant.Entitlements (forward
	// entitlements): opt-in, as it costs an allocation and, with add-ons,
	// a cache read each.
	listEntitlements bool
	// free holds each product's free_quota counter, by product (none for
	// a product without one), made at construction: read-only after.
	free map[string]*quotaCounter
}

// Requirement is one of a gate's require conditions (SPEC section 6): a
// gate's requirements all apply; within one, a token matching any of
// Types (or Classes) meets it. An unmet requirement is refused with 403
// requirement_not_met, after the licence's standing and before the quota.
type Requirement struct {
	// SupportActive requires the licence's support period to be running.
	SupportActive bool
	// Types are licence types (regular, extended, ...), any of which meets
	// the requirement.
	Types []string
	// Classes are install classes (production, staging, local), any of
	// which meets the requirement.
	Classes []string
	// Entitlements are entitlements (SPEC section 14), any of which the
	// installation must hold, its add-ons' included.
	Entitlements []string

	detail string
}

// installClasses are the install classes a requirement may name.
var installClasses = []string{"production", "staging", "local"}

// Check says what is wrong with a requirement an author wrote, if
// anything: it names no condition, an unknown class or an empty type.
func (r Requirement) Check() error {
	if !r.SupportActive && len(r.Types) == 0 && len(r.Classes) == 0 && len(r.Entitlements) == 0 {
		return errors.New("names no condition (support_active, type, class or entitlement)")
	}
	if slices.Contains(r.Entitlements, "") {
		return errors.New("entitlement must not be empty")
	}
	for _, c := range r.Classes {
		if !slices.Contains(installClasses, c) {
			return fmt.Errorf("class %q is not one of %s", c, strings.Join(installClasses, ", "))
		}
	}
	if slices.Contains(r.Types, "") {
		return errors.New("type must not be empty")
	}
	return nil
}

// ParseQuota parses a quota as an author writes it, "<n>/<period>" with a
// period of s, m, h or d.
func ParseQuota(s string) (Quota, error) {
	n, unit, ok := strings.Cut(s, "/")
	limit, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || limit < 1 {
		return Quota{}, fmt.Errorf("%q is not <n>/<period> with a positive n, e.g. 1000/d", s)
	}
	periods := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	p, ok := periods[unit]
	if !ok {
		return Quota{}, fmt.Errorf("%q: the period is one of s, m, h, d", s)
	}
	return Quota{Limit: limit, Period: p}, nil
}

// ParseQuotaArgs reads a gate's quota line: "[<n>/<period>]
// [<type>=<n>/<period>...]", the quota of every type and those of some
// types, as ParseQuotas takes them.
func ParseQuotaArgs(args []string) (quota string, byType map[string]string, err error) {
	if len(args) == 0 {
		return "", nil, errors.New("want <n>/<period> and/or <type>=<n>/<period>")
	}
	for _, a := range args {
		typ, q, ok := strings.Cut(a, "=")
		switch {
		case !ok && quota == "":
			quota = a
		case !ok:
			return "", nil, fmt.Errorf("one quota without a type, got %q and %q", quota, a)
		default:
			if byType == nil {
				byType = map[string]string{}
			}
			byType[typ] = q
		}
	}
	if _, _, err := ParseQuotas(quota, byType); err != nil {
		return "", nil, err
	}
	return quota, byType, nil
}

// DefaultFreeQuota is free_quota's default: room for a developer's or a
// staging copy's testing, not for a production site.
const DefaultFreeQuota = "1000/d"

// ParseFreeQuota parses a product's free_quota: "<n>/<period>", "off"
// (none) or empty (the default).
func ParseFreeQuota(s string) (Quota, error) {
	switch s {
	case "off":
		return Quota{}, nil
	case "":
		s = DefaultFreeQuota
	}
	return ParseQuota(s)
}

// ParseQuotas parses a gate's quota and its quotas by licence type (each
// as ParseQuota; "" or none: no quota).
func ParseQuotas(quota string, byType map[string]string) (Quota, map[string]Quota, error) {
	var q Quota
	if quota != "" {
		var err error
		if q, err = ParseQuota(quota); err != nil {
			return q, nil, err
		}
	}
	out := make(map[string]Quota, len(byType))
	for typ, s := range byType {
		if typ == "" {
			return q, nil, fmt.Errorf("%q: the licence type before = is empty", "="+s)
		}
		tq, err := ParseQuota(s)
		if err != nil {
			return q, nil, fmt.Errorf("%s: %w", typ, err)
		}
		out[typ] = tq
	}
	return q, out, nil
}

// GateOption configures a Gate beyond its products.
type GateOption func(*Gate)

// WithRequirements makes the gate refuse grants that do not meet every
// requirement.
func WithRequirements(rs ...Requirement) GateOption {
	return func(g *Gate) {
		for _, r := range rs {
			r.Types, r.Classes, r.Entitlements = slices.Clone(r.Types), slices.Clone(r.Classes), slices.Clone(r.Entitlements)
			r.detail = r.describe()
			g.require = append(g.require, r)
		}
	}
}

// describe is the buyer-safe detail naming the condition.
func (r Requirement) describe() string {
	var parts []string
	if r.SupportActive {
		parts = append(parts, "an active support period")
	}
	if len(r.Types) > 0 {
		parts = append(parts, "a licence of type "+strings.Join(r.Types, " or "))
	}
	if len(r.Classes) > 0 {
		parts = append(parts, "an installation of class "+strings.Join(r.Classes, " or "))
	}
	if len(r.Entitlements) > 0 {
		parts = append(parts, "the entitlement "+strings.Join(r.Entitlements, " or "))
	}
	return "This API requires " + strings.Join(parts, " and ") + "."
}

// met reports whether a grant meets the requirement's conditions other
// than entitlements (entitled). It allocates nothing.
func (r *Requirement) met(g *Grant) bool {
	if r.SupportActive && !g.SupportActive {
		return false
	}
	if len(r.Types) > 0 && !slices.Contains(r.Types, g.Type) {
		return false
	}
	return len(r.Classes) == 0 || slices.Contains(r.Classes, g.Class)
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
	// Quota is the installation's budget after this request (Limit 0:
	// the gate has no quota).
	Quota QuotaState
	// Entitlements is the installation's entitlements, comma-separated,
	// when the gate lists them (WithEntitlementList).
	Entitlements string

	// addons are the installation's add-ons, from the cached state
	// (shared: read only).
	addons []store.AddonRef
}

// Gate returns the admission path for tokens of the given products (their
// aud), or of every configured product when products is empty. Each Gate
// keeps its own verified-token cache: build one per handler at provision.
func (s *Service) Gate(products []string, opts ...GateOption) *Gate {
	if len(products) == 0 {
		products = s.cfg.ProductOrder
	}
	g := &Gate{svc: s, verifier: tokens.NewVerifier(s.ring, s.issuer.Name(), products), free: map[string]*quotaCounter{}}
	for _, name := range products {
		if p := s.product(name); p != nil && p.FreeQuota.Limit > 0 && p.FreeQuota.Period > 0 {
			g.free[name] = s.quotaCounter(p.FreeQuota.Period)
		}
	}
	for _, o := range opts {
		o(g)
	}
	return g
}

// Admit verifies an access token and decides whether its installation is
// still admitted: active at the token's generation, its licence in good
// standing, and meets the gate's requirements, then counts it against
// the gate's quota. A quota_exceeded refusal comes with the grant, whose
// Quota says when the window ends (for the RateLimit fields).
//
// maxStale is how long past its freshness a cached status may be served
// while the store is unreachable (on_store_error allow_stale; 0: deny).
func (g *Gate) Admit(ctx context.Context, rawToken string, maxStale time.Duration) (Grant, error) {
	return g.AdmitVersion(ctx, rawToken, "", maxStale)
}

// AdmitVersion is Admit for a request that reports the version of the
// installation's product (the gate's X-Product-Version header): an
// admitted installation's version is recorded with its last seen, and
// counted per product (store.Counters.Versions). A version that is not
// store.ValidVersion (at most 32 of [0-9A-Za-z.+_-]) is ignored, as is
// an empty one.
func (g *Gate) AdmitVersion(ctx context.Context, rawToken, version string, maxStale time.Duration) (Grant, error) {
	if !store.ValidVersion(version) {
		version = ""
	}
	now := g.svc.now() // once: the clock is a tenth of an admission's cost
	c, err := g.verify(ctx, rawToken, now)
	if err != nil {
		g.decided(now, "", err)
		return Grant{}, err
	}
	grant, err := g.svc.authorize(ctx, c, version, maxStale, now)
	if err == nil {
		err = g.admitPolicy(ctx, &grant, maxStale, now)
	}
	if err == nil && g.listEntitlements {
		err = g.listGrantEntitlements(ctx, &grant, maxStale, now)
	}
	g.decided(now, c.Audience, err)
	if err != nil && grant.Quota.Limit == 0 {
		return Grant{}, err
	}
	return grant, err
}

// admitPolicy applies the gate's requirements, then its quota, to an
// admitted grant.
func (g *Gate) admitPolicy(ctx context.Context, grant *Grant, maxStale time.Duration, now time.Time) error {
	for i := range g.require {
		r := &g.require[i]
		ok := r.met(grant)
		if ok && len(r.Entitlements) > 0 {
			var err error
			if ok, err = g.svc.entitled(ctx, grant, r.Entitlements, maxStale, now); err != nil {
				return err
			}
		}
		if !ok {
			return &Error{Code: CodeRequirementNotMet, Detail: r.detail}
		}
	}
	if err := g.admitQuota(grant, now); err != nil {
		return err
	}
	return g.admitFreeQuota(grant, now)
}

// WithEntitlementList makes the gate list each admitted installation's
// entitlements in Grant.Entitlements (forward entitlements).
func WithEntitlementList() GateOption {
	return func(g *Gate) { g.listEntitlements = true }
}

// listGrantEntitlements fills grant.Entitlements.
func (g *Gate) listGrantEntitlements(ctx context.Context, grant *Grant, maxStale time.Duration, now time.Time) error {
	ents, err := g.svc.grantEntitlements(ctx, grant, maxStale, now)
	if err != nil {
		return err
	}
	grant.Entitlements = strings.Join(ents, ",")
	return nil
}

// Refused counts a request the gate refused before it had a token to
// admit (no Bearer credential): code is the refusal's public code.
func (g *Gate) Refused(code string) {
	if g != nil {
		g.svc.obs.GateDecision("", code)
		g.svc.daily.gate(g.svc.now(), code)
	}
}

// decided counts a decision, for metrics and the per-day counts.
func (g *Gate) decided(now time.Time, product string, err error) {
	code := outcomeOf(err, OutcomeAdmitted)
	g.svc.obs.GateDecision(product, code)
	g.svc.daily.gate(now, code)
}

// verify checks an access token's signature and claims. Without signing
// keys (the store was down at start) it answers store_unavailable: an
// outage, not a bad token.
func (g *Gate) verify(ctx context.Context, rawToken string, now time.Time) (*tokens.Claims, error) {
	if err := g.svc.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	c, err := g.verifier.VerifyAt(rawToken, now)
	if err != nil {
		return nil, invalidToken("The access token is not valid.", err)
	}
	return c, nil
}

// mintedAfter reports whether a verified token names an installation, or
// a generation of it, that st does not know yet: st is older than the
// token. Generations only go up, so a token never runs ahead of the store.
func mintedAfter(st *store.LicenseState, c *tokens.Claims) bool {
	if st == nil || st.License == nil {
		return false // no token is ever minted before its licence is stored
	}
	ins := installationOf(st, c.Subject)
	return ins == nil || ins.Generation < c.Generation
}

// authorize decides on verified claims from the status cache, which
// refreshes a recently used licence in the background: the request waits
// on the store only when the cache holds nothing fresh or recently
// refreshable. An admitted installation's use is noted, with the version
// it reported ("": none).
func (s *Service) authorize(ctx context.Context, c *tokens.Claims, version string, maxStale time.Duration, now time.Time) (Grant, error) {
	st, stale, err := s.cache.GetStaleAt(ctx, c.License, maxStale, now)
	if err != nil {
		s.obs.StoreError(OpStatusRead)
		return Grant{}, unavailable(detailGateUnavailable, err)
	}
	ins, refusal := s.admitted(credentialOf(c), st, now)
	if refusal != nil && mintedAfter(st, c) {
		// The token was minted after the cached state: an activation or a
		// re-activation just written (here or on another instance) whose
		// change notice is still on its way. Read the store once rather
		// than refuse the buyer's brand-new token (its installer would
		// drop it as revoked). Only a refusal pays for this check.
		s.cache.Invalidate(c.License)
		if st, stale, err = s.cache.GetStaleAt(ctx, c.License, maxStale, now); err != nil {
			s.obs.StoreError(OpStatusRead)
			return Grant{}, unavailable(detailGateUnavailable, err)
		}
		ins, refusal = s.admitted(credentialOf(c), st, now)
	}
	if refusal != nil {
		return Grant{}, refusal
	}
	s.seen.touch(ins.ID, st.License.ID, version, now)
	return Grant{
		InstallationID: ins.ID, LicenseID: st.License.ID, Product: ins.Product,
		Domain: ins.Domain, Class: ins.InstallClass, Type: st.License.Type,
		SupportActive: supportActive(st.License, now), Stale: stale, addons: ins.Addons,
	}, nil
}

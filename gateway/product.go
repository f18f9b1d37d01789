package gateway

import (
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// Product is one product's configuration.
type Product struct {
	Name         string
	Sources      []string // source names, tried in this order
	Rules        policy.Rules
	MoveCooldown time.Duration
	// RefreshCooldown is the least time between two rechecks of a licence
	// asked for by its buyer or product (zero: DefaultRefreshCooldown).
	RefreshCooldown time.Duration
	// Leak is the product's leak_threshold (zero: 5 in 24h).
	Leak policy.LeakRule
	// Recheck is the background recheck's rules for the product's
	// licences (unset fields: the defaults; Mode off: never rechecked).
	Recheck policy.RecheckRules
	// FreeQuota bounds, at every gate, the requests of all of a licence's
	// free installs (local and staging ones holding no slot) together per
	// window (zero: none). Their domain is self-reported, so a copy
	// claiming to be *.test may be anything: what it can use is bounded.
	FreeQuota Quota

	// recheck is Recheck with its defaults, worked out once by New
	// (provisionProducts): the gate reads the expiry grace from it on
	// every request, the worker the mode and interval on every step.
	recheck policy.RecheckRules
}

// DefaultRefreshCooldown is refresh_cooldown's default: a buyer who
// renewed asks once. Asking is for a person's action ("I renewed"), not
// for every page load; a product that does ask that often still costs the
// marketplace at most one call per licence per ten minutes, taken from the
// recheck's share of its budget.
const DefaultRefreshCooldown = 10 * time.Minute

// refreshCooldown is a product's refresh_cooldown.
func (s *Service) refreshCooldown(product string) time.Duration {
	if p := s.product(product); p != nil && p.RefreshCooldown > 0 {
		return p.RefreshCooldown
	}
	return DefaultRefreshCooldown
}

// defaultRecheck are the recheck rules of a product no longer configured.
var defaultRecheck = policy.RecheckRules{}.WithDefaults()

// provisionProducts returns the products as a service keeps them: copies,
// with what their configuration implies worked out once. The caller's
// products are not written to, so services built from one configuration
// share no state.
func provisionProducts(in map[string]*Product) map[string]*Product {
	out := make(map[string]*Product, len(in))
	for name, p := range in {
		if p == nil {
			out[name] = nil // not configured, as before
			continue
		}
		cp := *p
		cp.recheck = p.Recheck.WithDefaults()
		out[name] = &cp
	}
	return out
}

// product is the configured product called name, or nil.
func (s *Service) product(name string) *Product { return s.cfg.Products[name] }

// hasSource reports whether the product takes keys from the source called
// name.
func (p *Product) hasSource(name string) bool {
	for _, s := range p.Sources {
		if s == name {
			return true
		}
	}
	return false
}

// recheckRules are a product's rules with their defaults (the defaults
// for a product no longer configured): a map read, as the gate asks for
// the expiry grace on every request (policyLicense).
func (s *Service) recheckRules(product string) policy.RecheckRules {
	if p := s.product(product); p != nil {
		return p.recheck
	}
	return defaultRecheck
}

// isLocal reports whether src is a local source (the author's key file):
// asking it costs nothing, so an activation asks it again about a stored
// licence, spends no failure budget on it, and health shows it without a
// breaker.
func isLocal(src upstreams.Source) bool {
	l, ok := src.(upstreams.Local)
	return ok && l.Local()
}

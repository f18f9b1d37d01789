package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// AddonOf names the base products this product is an add-on of (SPEC
	// section 14): its keys attach to an installation of one of them
	// (AttachAddon) and do not activate on their own.
	AddonOf []string
	// Entitlements are what an installation of the product may use, by
	// licence type ("*": every type without its own list). An add-on
	// without any grants its own name.
	Entitlements map[string][]string

	// recheck is Recheck with its defaults, worked out once by New
	// (provisionProducts): the gate reads the expiry grace from it on
	// every request, the worker the mode and interval on every step.
	recheck policy.RecheckRules
	// allEntitlements is every entitlement of Entitlements, whatever the
	// type, sorted: the gate's filter before it reads an add-on's status.
	allEntitlements []string
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
		if len(cp.AddonOf) > 0 && len(cp.Entitlements) == 0 {
			cp.Entitlements = map[string][]string{"*": {name}}
		}
		for _, ents := range cp.Entitlements {
			cp.allEntitlements = append(cp.allEntitlements, ents...)
		}
		slices.Sort(cp.allEntitlements)
		cp.allEntitlements = slices.Compact(cp.allEntitlements)
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

// ParseEntitlements reads a product's entitlements line: "<name,...>"
// for every licence type, or "<type>=<name,...>" per type (both may be
// given: the first is the types' default).
func ParseEntitlements(args []string) (map[string][]string, error) {
	if len(args) == 0 {
		return nil, errors.New("names no entitlement")
	}
	out := map[string][]string{}
	for _, a := range args {
		typ, list, ok := strings.Cut(a, "=")
		if !ok {
			typ, list = "*", a
		}
		if typ == "" {
			return nil, fmt.Errorf("%q: the licence type before = is empty", a)
		}
		if _, dup := out[typ]; dup {
			return nil, fmt.Errorf("%q: the type is given twice", a)
		}
		names := strings.Split(list, ",")
		if err := checkEntitlementNames(names); err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		out[typ] = names
	}
	return out, nil
}

// checkEntitlementNames refuses names a header list could not carry.
func checkEntitlementNames(names []string) error {
	for _, n := range names {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == ':' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
		}) {
			return fmt.Errorf("entitlement %q: use letters, digits and - _ . : only", n)
		}
	}
	return nil
}

// CheckAddons checks the products' add-on relations: an add-on names
// configured products that are not add-ons themselves, does not release
// idle installations (it follows its base's), and every entitlement name
// is one a header list can carry.
func CheckAddons(products map[string]*Product) error {
	for name, p := range products {
		for _, ents := range p.Entitlements {
			if err := checkEntitlementNames(ents); err != nil {
				return fmt.Errorf("product %s: entitlements: %w", name, err)
			}
		}
		if len(p.AddonOf) == 0 {
			continue
		}
		if p.Rules.ReleaseIdle > 0 {
			return fmt.Errorf("product %s: release_idle: an add-on follows its base installation, which releases it; set release_idle on %s", name, strings.Join(p.AddonOf, ", "))
		}
		for _, base := range p.AddonOf {
			b, ok := products[base]
			switch {
			case base == name:
				return fmt.Errorf("product %s: addon_of: a product cannot be an add-on of itself", name)
			case !ok || b == nil:
				return fmt.Errorf("product %s: addon_of: %q is not a configured product", name, base)
			case len(b.AddonOf) > 0:
				return fmt.Errorf("product %s: addon_of: %q is an add-on itself; attach add-ons to a base product", name, base)
			}
		}
	}
	return nil
}

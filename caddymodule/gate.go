package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// Gate admits requests that carry a valid access token of an installation
// in good standing, without any marketplace call (SPEC section 6).
//
// On admission it removes the Authorization header, any client-sent
// X-License-* (or X-License_*) header and any Connection token naming one
// (reverse_proxy would drop the gate's own header of that name), then sets:
//
//	X-License-Installation   installation id
//	X-License-Product        product slug
//	X-License-Domain         the installation's domain
//	X-License-Type           licence type (regular, extended, ...)
//	X-License-Support-Active true or false
//	X-License-Class          install class (production, staging, local)
//	X-License-Entitlements   the installation's entitlements, comma-separated (opt-in)
//
// (forward picks a subset; the default is the first six), and the placeholders {license.installation}, {license.id},
// {license.product}, {license.domain}, {license.class}, {license.type},
// {license.support_active}, {license.entitlements} (forward entitlements) and {license.stale}.
//
// It reads the optional X-Product-Version request header: the version of
// the product the installation runs (at most 32 of [0-9A-Za-z.+_-], else
// ignored), recorded with the installation's last seen and counted per
// product for the author console's installed versions. The header is
// passed on as sent.
type Gate struct {
	// Products lists the product slugs whose tokens are admitted (the
	// tokens' aud). Required when more than one product is configured (a
	// cheap product's token must not open an expensive product's API by
	// omission); with one product, that one.
	Products []string `json:"products,omitempty"`

	// Forward names the headers set on an admitted request: installation,
	// product, domain, type, support_active, class (X-License-<Name>).
	// Client-sent X-License-* headers are stripped whatever is forwarded.
	// Default: those six; entitlements (X-License-Entitlements) is
	// opt-in.
	Forward []string `json:"forward,omitempty"`

	// OnStoreError decides what happens when the store cannot be reached
	// and the cached status is older than the cache's TTL. Default:
	// allow_stale for 10m (serve the last-known status), then 503.
	OnStoreError *StoreErrorPolicy `json:"on_store_error,omitempty"`

	// Require lists extra conditions an admitted token must meet, all of
	// them (403 requirement_not_met naming the condition otherwise),
	// checked after the licence's standing. Default: none.
	Require []GateRequirement `json:"require,omitempty"`

	// Quota is each installation's request budget, "<n>/<period>" with a
	// period of s, m, h or d: fixed windows aligned to UTC (a day starts
	// at 00:00 UTC). Past it: 429 quota_exceeded with Retry-After; every
	// answer of the gate carries the RateLimit-Policy and RateLimit
	// fields. Counted in-process, synced to the store every second.
	// Default: none.
	Quota string `json:"quota,omitempty"`
	// QuotaByType is the budget of installations of a licence type, by
	// type, each as Quota (SPEC section 14: regular=1000/d
	// extended=10000/d); a type not named has Quota.
	QuotaByType map[string]string `json:"quota_by_type,omitempty"`

	rlPolicy map[gateway.Quota]string // the RateLimit-Policy field of each quota
	staleFor time.Duration
	forward  httpapi.ForwardSet
	gate     *gateway.Gate
	logger   *zap.Logger
}

// StoreErrorPolicy is the gate's behaviour while the store is down.
type StoreErrorPolicy struct {
	// Mode is allow_stale or deny.
	Mode string `json:"mode,omitempty"`
	// Stale is how long past its freshness a last-known status is served
	// with allow_stale. Default: 10m.
	Stale caddy.Duration `json:"stale,omitempty"`
}

// GateRequirement is one require line: support_active, type <t...> or
// class <c...>; a token matching any of its types (classes) meets it.
type GateRequirement struct {
	// SupportActive requires the licence's support period to be running.
	SupportActive bool `json:"support_active,omitempty"`
	// Type lists licence types (regular, extended, ...), any of which
	// meets the requirement.
	Type []string `json:"type,omitempty"`
	// Class lists install classes (production, staging, local), any of
	// which meets the requirement.
	Class []string `json:"class,omitempty"`
	// Entitlement lists entitlements (SPEC section 14), any of which the
	// installation must hold, its add-ons' included.
	Entitlement []string `json:"entitlement,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision builds the gate's admission path for its products.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	app, err := licensegateApp(ctx, "license_gate")
	if err != nil {
		return err
	}
	known := app.productNames()
	if len(g.Products) == 0 && len(known) > 1 {
		return fmt.Errorf("license_gate: products: required when more than one product is configured (have: %s)", strings.Join(known, ", "))
	}
	for _, p := range g.Products {
		if !slices.Contains(known, p) {
			return fmt.Errorf("license_gate: products: %q is not a configured product (have: %s)", p, strings.Join(known, ", "))
		}
	}
	if g.forward, err = httpapi.ParseForward(g.Forward); err != nil {
		return fmt.Errorf("license_gate: forward: %w", err)
	}
	reqs, err := requirements(g.Require)
	if err != nil {
		return err
	}
	opts := []gateway.GateOption{gateway.WithRequirements(reqs...)}
	if g.forward&httpapi.ForwardEntitlements != 0 {
		opts = append(opts, gateway.WithEntitlementList())
	}
	quota, byType, err := gateway.ParseQuotas(g.Quota, g.QuotaByType)
	if err != nil {
		return fmt.Errorf("license_gate: quota: %w", err)
	}
	opts = append(opts, gateway.WithQuota(quota), gateway.WithTypeQuotas(byType))
	g.rlPolicy = map[gateway.Quota]string{quota: httpapi.RateLimitPolicy(quota)}
	for _, q := range byType {
		g.rlPolicy[q] = httpapi.RateLimitPolicy(q)
	}
	g.gate = app.Service().Gate(g.Products, opts...)
	g.staleFor = defaultStale
	if p := g.OnStoreError; p != nil {
		switch p.Mode {
		case "deny":
			g.staleFor = 0
		case "allow_stale", "":
			if p.Stale < 0 {
				return errors.New("license_gate: on_store_error: stale must not be negative")
			}
			g.staleFor = durationOr(p.Stale, defaultStale)
		default:
			return fmt.Errorf("license_gate: on_store_error: mode %q is not allow_stale or deny", p.Mode)
		}
	}
	return nil
}

// ServeHTTP admits or refuses the request.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	raw, ok := httpapi.Bearer(r)
	if !ok {
		g.gate.Refused(gateway.CodeInvalidToken)
		httpapi.WriteProblem(w, g.logger, &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "A Bearer access token is required.", Cause: httpapi.ErrNoBearer})
		return nil
	}
	grant, err := g.gate.AdmitVersion(r.Context(), raw, r.Header.Get("X-Product-Version"), g.staleFor)
	if grant.Quota.Limit > 0 {
		q := gateway.Quota{Limit: grant.Quota.Limit, Period: grant.Quota.Period}
		httpapi.RateLimitFields(w.Header(), g.rlPolicy[q], &grant.Quota)
	}
	if err != nil {
		httpapi.WriteProblem(w, g.logger, err)
		return nil
	}
	forward(r, &grant, g.forward)
	return next.ServeHTTP(w, r)
}

// requirements checks the require conditions and turns them into the
// gateway's.
func requirements(rs []GateRequirement) ([]gateway.Requirement, error) {
	out := make([]gateway.Requirement, 0, len(rs))
	for i, r := range rs {
		req := gateway.Requirement{SupportActive: r.SupportActive, Types: r.Type, Classes: r.Class, Entitlements: r.Entitlement}
		if err := req.Check(); err != nil {
			return nil, fmt.Errorf("license_gate: require[%d]: %w", i, err)
		}
		out = append(out, req)
	}
	return out, nil
}

// forward replaces the credentials with the licence facts, as the headers
// in set and as {license.*} placeholders.
func forward(r *http.Request, grant *gateway.Grant, set httpapi.ForwardSet) {
	vars := httpapi.Forward(r.Header, grant, set)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(vars.Placeholder)
	} // else not served by Caddy's server (a test): no placeholders
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)

// parseGate parses:
//
//	license_gate [<slug...>] {
//		products <slug...>
//		on_store_error allow_stale [<duration>] | deny
//		forward <installation|product|domain|type|support_active|class...>
//		require support_active | type <type...> | class <class...> | entitlement <name...>   # may repeat: all apply
//		quota [<n>/<s|m|h|d>] [<type>=<n>/<s|m|h|d>...]
//	}
func parseGate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	g := new(Gate)
	g.Products = h.RemainingArgs()
	for h.NextBlock(0) {
		switch opt := h.Val(); opt {
		case "products":
			g.Products = append(g.Products, h.RemainingArgs()...)
		case "on_store_error":
			if err := parseOnStoreError(h, g); err != nil {
				return nil, err
			}
		case "forward":
			g.Forward = append(g.Forward, h.RemainingArgs()...)
			if len(g.Forward) == 0 {
				return nil, h.ArgErr()
			}
			if _, err := httpapi.ParseForward(g.Forward); err != nil {
				return nil, h.Errf("license_gate: forward: %v", err)
			}
		case "require":
			r, err := parseRequire(h)
			if err != nil {
				return nil, err
			}
			g.Require = append(g.Require, r)
		case "quota":
			var err error
			if g.Quota, g.QuotaByType, err = gateway.ParseQuotaArgs(h.RemainingArgs()); err != nil {
				return nil, h.Errf("license_gate: quota: %v", err)
			}
		default:
			return nil, h.Errf("license_gate: unrecognized option %q", opt)
		}
	}
	return g, nil
}

// parseRequire parses "require support_active", "require type <t...>" or
// "require class <c...>".
func parseRequire(h httpcaddyfile.Helper) (GateRequirement, error) {
	args := h.RemainingArgs()
	var r GateRequirement
	switch {
	case len(args) == 1 && args[0] == "support_active":
		r.SupportActive = true
	case len(args) >= 2 && args[0] == "type":
		r.Type = args[1:]
	case len(args) >= 2 && args[0] == "class":
		r.Class = args[1:]
	case len(args) >= 2 && args[0] == "entitlement":
		r.Entitlement = args[1:]
	default:
		return r, h.Errf("license_gate: require: want support_active, type <type...>, class <class...> or entitlement <name...>")
	}
	if err := (gateway.Requirement{SupportActive: r.SupportActive, Types: r.Type, Classes: r.Class, Entitlements: r.Entitlement}).Check(); err != nil {
		return r, h.Errf("license_gate: require: %v", err)
	}
	return r, nil
}

// parseOnStoreError parses "on_store_error allow_stale [<duration>]" or
// "on_store_error deny".
func parseOnStoreError(h httpcaddyfile.Helper, g *Gate) error {
	args := h.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "deny":
		g.OnStoreError = &StoreErrorPolicy{Mode: "deny"}
	case len(args) >= 1 && len(args) <= 2 && args[0] == "allow_stale":
		p := &StoreErrorPolicy{Mode: "allow_stale"}
		if len(args) == 2 {
			dur, err := caddy.ParseDuration(args[1])
			if err != nil || dur <= 0 {
				return h.Errf("license_gate: on_store_error: allow_stale %q is not a positive duration", args[1])
			}
			p.Stale = caddy.Duration(dur)
		}
		g.OnStoreError = p
	default:
		return h.Errf("license_gate: on_store_error: want allow_stale [<duration>] or deny")
	}
	return nil
}

package caddymodule

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// Product is one product's configuration.
type Product struct {
	// Sources names the sources that sell it, tried in this order when a
	// key's format fits several.
	Sources []string `json:"sources,omitempty"`
	// Activations is the number of production slots per licence when the
	// source sets none. Default: 1.
	Activations int `json:"activations,omitempty"`
	// LocalDomains is how localhost/*.test installs count: free, slot or
	// deny. Default: free.
	LocalDomains string `json:"local_domains,omitempty"`
	// LocalCap bounds free local installs per licence (Caddyfile:
	// local_domains free <n>). Default: 5.
	LocalCap int `json:"local_cap,omitempty"`
	// StagingSubdomains is how subdomains of an active production domain
	// count: free, slot or deny. Default: free.
	StagingSubdomains string `json:"staging_subdomains,omitempty"`
	// StagingCap bounds free staging installs per production domain
	// (Caddyfile: staging_subdomains free <n>). Default: 3.
	StagingCap int `json:"staging_cap,omitempty"`
	// StagingHosts are the author's own staging host suffixes (a host
	// below one is staging, like the hosting platforms' built in: see
	// policy.PlatformStagingSuffixes), e.g. staging.example.com.
	StagingHosts []string `json:"staging_hosts,omitempty"`
	// LeakThreshold is "<n>/<period>": a licence seen activating on more
	// than n distinct production domains (refused attempts included), or
	// re-activated from more than n distinct client networks, within the
	// period is locked for new activations (existing installations keep
	// working) until the author unlocks it. n is raised to twice the
	// licence's production slots when that is more. Default: 5/24h.
	LeakThreshold string `json:"leak_threshold,omitempty"`
	// MoveCooldown is the least time between two domain moves of one
	// licence. Default: 24h.
	MoveCooldown *caddy.Duration `json:"move_cooldown,omitempty"`
	// RefreshCooldown is the least time between two rechecks of one
	// licence asked for by its buyer or product (status/refresh; the buyer
	// portal's "I renewed" when it comes): beyond it, 429
	// refresh_cooldown. Default: 10m.
	RefreshCooldown caddy.Duration `json:"refresh_cooldown,omitempty"`
	// Recheck is the background recheck of the product's licences (SPEC
	// section 7). Default: every 168h, mode manual.
	Recheck *RecheckConfig `json:"recheck,omitempty"`
	// ExpiryGrace is how long a licence past its expires_at keeps serving
	// while its source cannot confirm the expiry, so an outage at the
	// moment of expiry never cuts off a buyer who renewed. Default: 168h.
	ExpiryGrace *caddy.Duration `json:"expiry_grace,omitempty"`
	// ReleaseIdle frees the slot of an installation unused this long (its
	// last_seen_at, or created_at when never seen): the activation that
	// needs the slot, or the idle sweep, marks it released, and its tokens
	// get 403 installation_released. At least 1s; below 10m a warning says
	// what it will do. Default: off.
	ReleaseIdle caddy.Duration `json:"release_idle,omitempty"`

	// FreeQuota bounds the requests of all of a licence's free installs
	// (local and staging ones that hold no slot) together, at every gate,
	// as "<n>/<period>" (s, m, h, d), or "off". Their domain is what the
	// installer claims, so a copy calling itself *.test may be a real
	// site: this is what such copies can use. Default: 1000/d.
	FreeQuota string `json:"free_quota,omitempty"`

	// AddonOf makes the product an add-on of the named products (SPEC
	// section 14): its keys attach to their installations (POST addons).
	AddonOf []string `json:"addon_of,omitempty"`
	// Entitlements are what an installation may use, by licence type
	// ("*": any type without its own), e.g. {"regular": ["basic"],
	// "extended": ["basic", "saas"]}. Default: none; an add-on's own name.
	Entitlements map[string][]string `json:"entitlements,omitempty"`

	// Mappings are the product's identifiers at each source it is sold
	// on, by source name: Envato item ids, AppTrovo slugs, Digital
	// Downloads Pro list tokens (may be placeholders), ... In the
	// Caddyfile each is under its source's mapping option (envato_item,
	// apptrovo_slug, ddp_list_token, ...).
	Mappings map[string][]string `json:"mappings,omitempty"`
}

// RecheckConfig is a product's background recheck (Caddyfile: recheck
// every <d> mode <m> [confirm <n>] [confirm_window <d>]
// [auto_suspend_not_found]).
type RecheckConfig struct {
	// Every is how often each licence is asked about again. Default: 168h;
	// at least 1s, and below 1h a warning says what it will do.
	Every caddy.Duration `json:"every,omitempty"`
	// Mode is manual (a definitive answer flags the licence, which still
	// serves; the author decides), auto (suspends after Confirm answers
	// over ConfirmWindow) or off (never rechecked). Default: manual.
	Mode string `json:"mode,omitempty"`
	// Confirm is how many consecutive definitive answers auto mode needs.
	// Default: 3.
	Confirm int `json:"confirm,omitempty"`
	// ConfirmWindow is how long those answers must span. Default: 72h.
	ConfirmWindow caddy.Duration `json:"confirm_window,omitempty"`
	// AutoSuspendNotFound lets auto mode suspend on "not found" answers,
	// which Envato also gives for closed buyer accounts. Default: false.
	AutoSuspendNotFound bool `json:"auto_suspend_not_found,omitempty"`
}

// rules checks the recheck options and returns them as policy's rules,
// with errors that name the option.
func (rc *RecheckConfig) rules(logger *zap.Logger, product string, grace *caddy.Duration) (policy.RecheckRules, error) {
	var r policy.RecheckRules
	scope := "product " + product + ": "
	if grace != nil {
		if *grace < 0 {
			return r, fmt.Errorf("product %s: expiry_grace: must not be negative", product)
		}
		if err := checkDuration(logger, scope, "expiry_grace", time.Duration(*grace)); err != nil {
			return r, err
		}
		r.ExpiryGrace = time.Duration(*grace)
		if r.ExpiryGrace == 0 {
			r.ExpiryGrace = time.Nanosecond // 0 given: no grace (unset means the default)
		}
	}
	if rc == nil {
		return r.WithDefaults(), nil
	}
	if rc.Mode != "" {
		m, err := policy.ParseRecheckMode(rc.Mode)
		if err != nil {
			return r, fmt.Errorf("product %s: recheck mode: %w", product, err)
		}
		r.Mode = m
	}
	switch {
	case rc.Every < 0:
		return r, fmt.Errorf("product %s: recheck every: must not be negative", product)
	case rc.Confirm < 0:
		return r, fmt.Errorf("product %s: recheck confirm: must not be negative", product)
	case rc.ConfirmWindow < 0:
		return r, fmt.Errorf("product %s: recheck confirm_window: must not be negative", product)
	}
	if err := checkDuration(logger, scope, "recheck every", time.Duration(rc.Every)); err != nil {
		return r, err
	}
	if err := checkDuration(logger, scope, "recheck confirm_window", time.Duration(rc.ConfirmWindow)); err != nil {
		return r, err
	}
	r.Every, r.Confirm, r.ConfirmWindow = time.Duration(rc.Every), rc.Confirm, time.Duration(rc.ConfirmWindow)
	r.AutoSuspendNotFound = rc.AutoSuspendNotFound
	return r.WithDefaults(), nil
}

// mappedSources lists the sources the product has mappings for: those it
// is sold on first, in its order, then any other, sorted.
func (pc Product) mappedSources() []string {
	var names []string
	for _, s := range pc.Sources {
		if len(pc.Mappings[s]) > 0 && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	var rest []string
	for s, ids := range pc.Mappings {
		if len(ids) > 0 && !slices.Contains(names, s) {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// productMaps collects, per source, which of our products each of its
// product identifiers is, checking every product sold there names itself.
func (a *App) productMaps() (map[string]upstreams.ProductMap, error) {
	maps := map[string]upstreams.ProductMap{}
	for _, name := range a.productNames() {
		pc := a.Products[name]
		if pc == nil {
			continue
		}
		if err := pc.checkMappings(name); err != nil {
			return nil, err
		}
		for _, source := range pc.mappedSources() {
			option, _, _ := sourceMapping(source)
			for _, id := range pc.Mappings[source] {
				resolved, err := resolveSecret(option, id)
				if err != nil {
					return nil, fmt.Errorf("product %s: %w", name, err)
				}
				if other, dup := maps[source].Product(resolved); dup {
					return nil, fmt.Errorf("product %s: %s %q is already product %s's", name, option, id, other)
				}
				maps[source] = append(maps[source], upstreams.ProductMapping{Product: name, VendorID: resolved})
			}
		}
	}
	return maps, nil
}

// checkMappings refuses mappings for a source the product is not sold on,
// and a missing one that its source requires.
func (pc *Product) checkMappings(name string) error {
	for _, source := range pc.mappedSources() {
		option, _, err := sourceMapping(source)
		if err != nil {
			return fmt.Errorf("product %s: mapping for source %s: %w", name, source, err)
		}
		if option == "" {
			return fmt.Errorf("product %s: mappings: source %s takes no product mapping", name, source)
		}
		if !slices.Contains(pc.Sources, source) {
			return fmt.Errorf("product %s: %s is set but %s is not in its sources", name, option, source)
		}
	}
	for _, source := range pc.Sources {
		option, required, err := sourceMapping(source)
		if err != nil {
			continue // Product.build names the unconfigured source
		}
		if required && len(pc.Mappings[source]) == 0 {
			return fmt.Errorf("product %s: %s is required for source %s", name, option, source)
		}
	}
	return nil
}

func (a *App) buildProducts(sources map[string]upstreams.Source) (map[string]*gateway.Product, []string, error) {
	products := make(map[string]*gateway.Product, len(a.Products))
	var order []string
	for name, pc := range a.Products {
		p, err := pc.build(a.logger, name, sources)
		if err != nil {
			return nil, nil, err
		}
		products[name] = p
		order = append(order, name)
	}
	if err := gateway.CheckAddons(products); err != nil {
		return nil, nil, err
	}
	sort.Strings(order)
	return products, order, nil
}

func (pc *Product) build(logger *zap.Logger, name string, sources map[string]upstreams.Source) (*gateway.Product, error) {
	if pc == nil {
		return nil, fmt.Errorf("product %s: empty configuration", name)
	}
	if len(pc.Sources) == 0 {
		return nil, fmt.Errorf("product %s: sources: at least one source is required", name)
	}
	for _, s := range pc.Sources {
		if _, ok := sources[s]; !ok {
			return nil, fmt.Errorf("product %s: sources: %q is not configured (add a source %s block)", name, s, s)
		}
	}
	if pc.Activations < 0 {
		return nil, fmt.Errorf("product %s: activations: must not be negative", name)
	}
	local, err := treatment(pc.LocalDomains)
	if err != nil {
		return nil, fmt.Errorf("product %s: local_domains: %w", name, err)
	}
	staging, err := treatment(pc.StagingSubdomains)
	if err != nil {
		return nil, fmt.Errorf("product %s: staging_subdomains: %w", name, err)
	}
	if pc.LocalCap < 0 || (pc.LocalCap > 0 && local != policy.Free) {
		return nil, fmt.Errorf("product %s: local_cap: %d needs local_domains free and a positive number", name, pc.LocalCap)
	}
	if pc.StagingCap < 0 || (pc.StagingCap > 0 && staging != policy.Free) {
		return nil, fmt.Errorf("product %s: staging_cap: %d needs staging_subdomains free and a positive number", name, pc.StagingCap)
	}
	var stagingHosts []string
	for _, h := range pc.StagingHosts {
		s, ok := policy.NormalizeSuffix(h)
		if !ok {
			return nil, fmt.Errorf("product %s: staging_hosts: %q is not a domain suffix", name, h)
		}
		stagingHosts = append(stagingHosts, s)
	}
	leak := policy.LeakRule{}
	if pc.LeakThreshold != "" {
		r, err := upstreams.ParseRate(pc.LeakThreshold)
		if err != nil {
			return nil, fmt.Errorf("product %s: leak_threshold: %w", name, err)
		}
		leak = policy.LeakRule{Threshold: r.Calls, Window: r.Period}
	}
	cooldown := 24 * time.Hour
	if pc.MoveCooldown != nil {
		if *pc.MoveCooldown < 0 {
			return nil, fmt.Errorf("product %s: move_cooldown: must not be negative", name)
		}
		cooldown = time.Duration(*pc.MoveCooldown)
		if err := checkDuration(logger, "product "+name+": ", "move_cooldown", cooldown); err != nil {
			return nil, err
		}
		if cooldown == 0 && logger != nil {
			logger.Warn("product "+name+": move_cooldown is 0: a re-activation from another network (a leaked code) "+
				"may deactivate or move the buyer's installation at once, and may take it again right after the buyer did",
				zap.String("option", "move_cooldown"))
		}
	}
	recheck, err := pc.Recheck.rules(logger, name, pc.ExpiryGrace)
	if err != nil {
		return nil, err
	}
	if pc.ReleaseIdle < 0 {
		return nil, fmt.Errorf("product %s: release_idle: must not be negative", name)
	}
	if pc.RefreshCooldown < 0 {
		return nil, fmt.Errorf("product %s: refresh_cooldown: must not be negative", name)
	}
	if err := checkDuration(logger, "product "+name+": ", "refresh_cooldown", time.Duration(pc.RefreshCooldown)); err != nil {
		return nil, err
	}
	if err := checkDuration(logger, "product "+name+": ", "release_idle", time.Duration(pc.ReleaseIdle)); err != nil {
		return nil, err
	}
	free, err := gateway.ParseFreeQuota(pc.FreeQuota)
	if err != nil {
		return nil, fmt.Errorf("product %s: free_quota: %w", name, err)
	}
	return &gateway.Product{
		Name: name, Sources: pc.Sources, MoveCooldown: cooldown, Leak: leak,
		RefreshCooldown: time.Duration(pc.RefreshCooldown),
		Rules: policy.Rules{
			Activations: pc.Activations, LocalDomains: local, StagingSubdomains: staging,
			LocalCap: pc.LocalCap, StagingCap: pc.StagingCap, StagingHosts: stagingHosts, ReleaseIdle: time.Duration(pc.ReleaseIdle),
		},
		Recheck: recheck, FreeQuota: free, AddonOf: pc.AddonOf, Entitlements: pc.Entitlements,
	}, nil
}

func treatment(s string) (policy.Treatment, error) {
	if s == "" {
		return policy.Free, nil
	}
	return policy.ParseTreatment(s)
}

func parseProduct(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if _, dup := app.Products[name]; dup {
		return d.Errf("product %s: given twice", name)
	}
	p := &Product{}
	for d.NextBlock(1) {
		if err := parseProductOption(d, name, p); err != nil {
			return err
		}
	}
	if app.Products == nil {
		app.Products = map[string]*Product{}
	}
	app.Products[name] = p
	return nil
}

// recheckArgs reads recheck every <d> mode <m> [confirm <n>]
// [confirm_window <d>] [auto_suspend_not_found], its words in any order.
func recheckArgs(d *caddyfile.Dispenser, product string, p *Product) error {
	if p.Recheck != nil {
		return d.Errf("product %s: recheck: given twice", product)
	}
	rc := &RecheckConfig{}
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	value := func(i int, word string) (string, error) {
		if i+1 >= len(args) {
			return "", d.Errf("product %s: recheck %s: a value is required", product, word)
		}
		return args[i+1], nil
	}
	duration := func(word, v string) (caddy.Duration, error) {
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 {
			return 0, d.Errf("product %s: recheck %s: %q is not a duration", product, word, v)
		}
		return caddy.Duration(dur), nil
	}
	for i := 0; i < len(args); i++ {
		word := args[i]
		switch word {
		case "auto_suspend_not_found":
			rc.AutoSuspendNotFound = true
			continue
		case "every", "mode", "confirm", "confirm_window":
		default:
			return d.Errf("product %s: recheck: unrecognized word %q (every, mode, confirm, confirm_window, auto_suspend_not_found)", product, word)
		}
		v, err := value(i, word)
		if err != nil {
			return err
		}
		i++
		switch word {
		case "every":
			if rc.Every, err = duration(word, v); err != nil {
				return err
			}
		case "confirm_window":
			if rc.ConfirmWindow, err = duration(word, v); err != nil {
				return err
			}
		case "mode":
			if _, err := policy.ParseRecheckMode(v); err != nil {
				return d.Errf("product %s: recheck mode: %v", product, err)
			}
			rc.Mode = v
		case "confirm":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("product %s: recheck confirm: %q is not a positive number", product, v)
			}
			rc.Confirm = n
		}
	}
	p.Recheck = rc
	return nil
}

// treatmentArg reads a product's "free [<cap>]|slot|deny" option.
func treatmentArg(d *caddyfile.Dispenser, product string, dst *string, capacity *int) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	t, err := policy.ParseTreatment(args[0])
	if err != nil {
		return d.Errf("product %s: %s: %v", product, opt, err)
	}
	*dst = args[0]
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		if t != policy.Free || err != nil || n < 1 {
			return d.Errf("product %s: %s: only free takes a cap, a positive number (got %q)", product, opt, strings.Join(args, " "))
		}
		*capacity = n
	}
	return nil
}

func parseProductOption(d *caddyfile.Dispenser, name string, p *Product) error {
	switch opt := d.Val(); opt {
	case "sources":
		p.Sources = d.RemainingArgs()
		if len(p.Sources) == 0 {
			return d.ArgErr()
		}
	case "activations":
		return positiveArg(d, "product "+name, &p.Activations)
	case "local_domains":
		return treatmentArg(d, name, &p.LocalDomains, &p.LocalCap)
	case "staging_subdomains":
		return treatmentArg(d, name, &p.StagingSubdomains, &p.StagingCap)
	case "staging_hosts":
		if p.StagingHosts = d.RemainingArgs(); len(p.StagingHosts) == 0 {
			return d.ArgErr()
		}
	case "leak_threshold":
		if err := singleArg(d, &p.LeakThreshold); err != nil {
			return err
		}
		if _, err := upstreams.ParseRate(p.LeakThreshold); err != nil {
			return d.Errf("product %s: leak_threshold: %v", name, err)
		}
	case "move_cooldown":
		var dur caddy.Duration
		if err := durationArg(d, &dur); err != nil {
			return err
		}
		p.MoveCooldown = &dur
	case "refresh_cooldown":
		return durationArg(d, &p.RefreshCooldown)
	case "recheck":
		return recheckArgs(d, name, p)
	case "expiry_grace":
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil || dur < 0 {
			return d.Errf("product %s: expiry_grace: %q is not a duration of 0 or more", name, s)
		}
		g := caddy.Duration(dur)
		p.ExpiryGrace = &g
	case "release_idle":
		if err := durationArg(d, &p.ReleaseIdle); err != nil {
			return err
		}
	case "addon_of":
		if p.AddonOf = d.RemainingArgs(); len(p.AddonOf) == 0 {
			return d.ArgErr()
		}
	case "entitlements":
		ents, err := gateway.ParseEntitlements(d.RemainingArgs())
		if err != nil {
			return d.Errf("product %s: entitlements: %v", name, err)
		}
		p.Entitlements = ents
	case "free_quota":
		if err := singleArg(d, &p.FreeQuota); err != nil {
			return err
		}
		if _, err := gateway.ParseFreeQuota(p.FreeQuota); err != nil {
			return d.Errf("product %s: free_quota: %v", name, err)
		}
	default:
		source, ok := mappingSource(opt) // envato_item, apptrovo_slug, ...
		if !ok {
			return d.Errf("product %s: unrecognized option %q", name, opt)
		}
		ids := d.RemainingArgs()
		if len(ids) == 0 {
			return d.ArgErr()
		}
		if p.Mappings == nil {
			p.Mappings = map[string][]string{}
		}
		p.Mappings[source] = append(p.Mappings[source], ids...)
	}
	return nil
}

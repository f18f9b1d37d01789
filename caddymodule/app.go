// Package caddymodule is licensegate's Caddy glue: the licensegate app, its
// storage and source guest modules, the license_exchange and license_gate
// HTTP handlers and their Caddyfile syntax. No business rule lives here; it
// configures and calls package gateway.
package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/supervise"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/telemetry"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/webhooks"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults (SPEC section 3).
const (
	defaultAccessTTL  = time.Hour
	defaultRefreshTTL = 8760 * time.Hour
	defaultReuseGrace = 30 * time.Second
	maxReuseGrace     = time.Minute
	defaultStale      = 10 * time.Minute

	defaultAuditRetention = 8760 * time.Hour
)

// App is the licensegate app: it owns the store, the signing key ring, the
// licence sources and the gateway service that the license_exchange and
// license_gate handlers use.
type App struct {
	// Storage is the store module (licensegate.storage.*). Default:
	// the embedded store in Caddy's data directory.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=licensegate.storage inline_key=module"`

	// Secret is the master secret (at least 32 bytes), usually
	// "{env.LICENSEGATE_SECRET}" or "{file./path}". It keys licence ids and
	// encrypts purchase codes and signing keys at rest. Optional with the
	// embedded store: one is generated beside the store file.
	Secret string `json:"secret,omitempty"`

	// Issuer is the access tokens' iss claim. Default: "licensegate"
	// (gateway.DefaultIssuer).
	Issuer string `json:"issuer,omitempty"`

	// AccessTokenTTL is the access tokens' lifetime. Default: 1h.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`

	// RefreshTokenTTL is the refresh tokens' lifetime. Default: 8760h.
	RefreshTokenTTL caddy.Duration `json:"refresh_token_ttl,omitempty"`

	// RefreshReuseGrace is how long the refresh token rotated last may be
	// presented again, while its successor is unused, and get that same
	// successor pair instead of counting as reuse: several PHP workers
	// sharing one stored token, or a retry after a lost answer, are not a
	// cloned installation. At most 1m; 0 disables. Default: 30s.
	RefreshReuseGrace *caddy.Duration `json:"refresh_reuse_grace,omitempty"`

	// StatusCacheTTL is how long the gate serves a licence's status from
	// memory before asking the store again. Changes announced by the store
	// apply at once; this bounds how long a lost announcement goes
	// unnoticed. Default: 30s.
	StatusCacheTTL caddy.Duration `json:"status_cache_ttl,omitempty"`

	// KeyRotation makes a new signing key current when the current one is
	// this old; earlier keys verify until their tokens expire. Default: 0,
	// no scheduled rotation (rotate from the admin API).
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`

	// SourcesRaw are the licence sources (licensegate.sources.*), by name.
	SourcesRaw caddy.ModuleMap `json:"sources,omitempty" caddy:"namespace=licensegate.sources"`

	// Products are the products sold, by slug.
	Products map[string]*Product `json:"products,omitempty"`

	// Webhooks are the endpoints events are POSTed to (webhooks.go).
	Webhooks []*Webhook `json:"webhooks,omitempty"`

	// AuditRetention is how long audit entries are kept; older ones are
	// trimmed in small batches. Default: 8760h.
	AuditRetention caddy.Duration `json:"audit_retention,omitempty"`

	storage Storage
	store   store.Store
	master  *secret.Master
	svc     *gateway.Service
	logger  *zap.Logger
	pooled  []string // sourcePool keys held by this config
	sources map[string]upstreams.Source
	metrics *telemetry.Metrics    // nil: metrics unavailable (reported at provision)
	metKey  string                // registrations key held by this config
	running *telemetry.Running    // what the gauges read while this config runs
	workers *supervise.Supervisor // background work: run by Start, stopped by Stop

	deliveries *webhooks.Worker
}

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

	// Mappings are the product's identifiers at each source it is sold
	// on, by source name: Envato item ids, AppTrovo slugs, Digital
	// Downloads Pro list tokens (may be placeholders), ... In JSON and the
	// Caddyfile each is under its source's mapping option (envato_item,
	// apptrovo_slug, ddp_list_token, ...), see Product.MarshalJSON.
	Mappings map[string][]string `json:"-"`
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

// productJSON is Product without its JSON methods.
type productJSON Product

// MarshalJSON writes the mappings under their sources' options
// ("envato_item": [...]), in the order of the product's sources.
func (pc Product) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(productJSON(pc))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(bytes.TrimSuffix(base, []byte("}")))
	for _, source := range pc.mappedSources() {
		option, _, err := sourceMapping(source)
		if err != nil {
			return nil, err
		}
		if option == "" {
			return nil, fmt.Errorf("source %s takes no product mapping", source)
		}
		ids, _ := json.Marshal(pc.Mappings[source])
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(option)
		out.Write(name)
		out.WriteByte(':')
		out.Write(ids)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
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

// UnmarshalJSON reads a product, taking each key that a registered
// source names as its mapping option into Mappings; any other unknown key
// is refused, as Caddy refuses unknown fields.
func (pc *Product) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	mappings := map[string][]string{}
	for key, raw := range fields {
		source, ok := mappingSource(key)
		if !ok {
			continue
		}
		var ids []string
		if err := json.Unmarshal(raw, &ids); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		mappings[source] = append(mappings[source], ids...)
		delete(fields, key)
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*productJSON)(pc)); err != nil {
		return err
	}
	if len(mappings) > 0 {
		pc.Mappings = mappings
	}
	return nil
}

// Storage is implemented by licensegate.storage.* modules.
type Storage interface {
	// Store returns the store opened at provision time.
	Store() store.Store
}

// SecretKeeper is implemented by storage modules that can keep a generated
// master secret (the embedded store keeps it beside its file).
type SecretKeeper interface {
	// LoadOrCreateSecret returns the kept secret, creating it when absent;
	// created reports which, path where it is kept.
	LoadOrCreateSecret() (value string, created bool, path string, err error)
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "licensegate",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets up the store, secret, key ring, sources and service. It
// makes no source calls.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.checkUnsupported(); err != nil {
		return err
	}
	if err := a.provisionStorage(ctx); err != nil {
		return err
	}
	if err := a.provisionSecret(); err != nil {
		return err
	}
	a.provisionMetrics(ctx)
	sources, err := a.provisionSources(ctx)
	if err != nil {
		return err
	}
	a.sources = sources
	products, order, err := a.buildProducts(sources)
	if err != nil {
		return err
	}
	if err := a.buildService(sources, products, order); err != nil {
		return err
	}
	return a.provisionWebhooks(ctx)
}

func (a *App) checkUnsupported() error {
	if a.KeyRotation < 0 {
		return errors.New("key_rotation: must not be negative")
	}
	return checkDuration(a.logger, "", "key_rotation", time.Duration(a.KeyRotation))
}

func (a *App) provisionStorage(ctx caddy.Context) error {
	if a.StorageRaw == nil {
		a.StorageRaw = json.RawMessage(`{"module":"embedded"}`)
	}
	mod, err := ctx.LoadModule(a, "StorageRaw")
	if err != nil {
		return fmt.Errorf("loading storage module: %w", err)
	}
	a.storage = mod.(Storage)
	a.store = a.storage.Store()
	return nil
}

func (a *App) provisionSecret() error {
	value := a.Secret
	if value != "" {
		v, err := caddy.NewReplacer().ReplaceOrErr(value, true, true)
		if err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		value = v
	} else {
		keeper, ok := a.storage.(SecretKeeper)
		if !ok {
			return errors.New("secret: required with this storage (every instance must share it); set secret {env.LICENSEGATE_SECRET}")
		}
		v, created, path, err := keeper.LoadOrCreateSecret()
		if err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		if created {
			a.logger.Warn("no secret configured: generated one and kept it beside the store; back it up with the store, or set secret explicitly", zap.String("path", path))
		}
		value = v
	}
	m, err := secret.New([]byte(value))
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	a.master = m
	return nil
}

func (a *App) provisionSources(ctx caddy.Context) (map[string]upstreams.Source, error) {
	mods, err := ctx.LoadModule(a, "SourcesRaw")
	if err != nil {
		return nil, fmt.Errorf("loading sources: %w", err)
	}
	maps, err := a.productMaps()
	if err != nil {
		return nil, err
	}
	sources := make(map[string]upstreams.Source)
	for name, mod := range mods.(map[string]any) {
		m, ok := mod.(SourceModule)
		if !ok {
			return nil, fmt.Errorf("source %s: module %T is not a licence source", name, mod)
		}
		src, err := a.provisionSource(name, m, maps[name])
		if err != nil {
			return nil, err
		}
		sources[name] = src
	}
	return sources, nil
}

// provisionSource builds a source, or takes the running config's when
// configured the same. A local one is built afresh, unwrapped: asking it
// costs nothing, and a reload must see its file.
func (a *App) provisionSource(name string, m SourceModule, products upstreams.ProductMap) (upstreams.Source, error) {
	if l, ok := m.(upstreams.Local); ok && l.Local() {
		client, _ := upstreams.NewClient(upstreams.Client{})
		src, err := m.BuildSource(SourceConfig{Name: name, Products: products, Client: client})
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		return src, nil
	}
	src, key, err := loadPooledSource(name, m, products, a.logger.Named("source."+name), a.upstreamObserver())
	if err != nil {
		return nil, err
	}
	a.pooled = append(a.pooled, key)
	return src, nil
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
	if err := checkDuration(logger, "product "+name+": ", "release_idle", time.Duration(pc.ReleaseIdle)); err != nil {
		return nil, err
	}
	free, err := freeQuota(pc.FreeQuota)
	if err != nil {
		return nil, fmt.Errorf("product %s: free_quota: %w", name, err)
	}
	return &gateway.Product{
		Name: name, Sources: pc.Sources, MoveCooldown: cooldown, Leak: leak,
		Rules: policy.Rules{
			Activations: pc.Activations, LocalDomains: local, StagingSubdomains: staging,
			LocalCap: pc.LocalCap, StagingCap: pc.StagingCap, ReleaseIdle: time.Duration(pc.ReleaseIdle),
		},
		Recheck: recheck, FreeQuota: free,
	}, nil
}

// defaultFreeQuota is free_quota's default: room for a developer's or a
// staging copy's testing, not for a production site.
const defaultFreeQuota = "1000/d"

// freeQuota parses free_quota: "<n>/<period>", "off" (none) or empty (the
// default).
func freeQuota(s string) (gateway.Quota, error) {
	switch s {
	case "off":
		return gateway.Quota{}, nil
	case "":
		s = defaultFreeQuota
	}
	return ParseQuota(s)
}

func treatment(s string) (policy.Treatment, error) {
	if s == "" {
		return policy.Free, nil
	}
	return policy.ParseTreatment(s)
}

// buildService names config errors for users; gateway.New builds the key
// ring and issuer from what is checked here.
func (a *App) buildService(sources map[string]upstreams.Source, products map[string]*gateway.Product, order []string) error {
	accessTTL := durationOr(a.AccessTokenTTL, defaultAccessTTL)
	refreshTTL := durationOr(a.RefreshTokenTTL, defaultRefreshTTL)
	if err := checkDuration(a.logger, "", "access_token_ttl", accessTTL); err != nil {
		return err
	}
	if refreshTTL < accessTTL {
		return fmt.Errorf("refresh_token_ttl: %s is shorter than access_token_ttl %s", refreshTTL, accessTTL)
	}
	reuseGrace := defaultReuseGrace
	if a.RefreshReuseGrace != nil {
		reuseGrace = time.Duration(*a.RefreshReuseGrace)
	}
	if reuseGrace > maxReuseGrace {
		return fmt.Errorf("refresh_reuse_grace: %s is longer than the %s maximum", reuseGrace, maxReuseGrace)
	}
	if err := checkDuration(a.logger, "", "refresh_reuse_grace", reuseGrace); err != nil {
		return err
	}
	svc, err := gateway.New(gateway.Config{
		Store: a.store, Master: a.master, Issuer: a.Issuer, AccessTTL: accessTTL,
		RefreshTTL: refreshTTL, RefreshReuseGrace: reuseGrace,
		Sources: sources, Products: products, ProductOrder: order,
		KeyRotation:    time.Duration(a.KeyRotation),
		AuditRetention: durationOr(a.AuditRetention, defaultAuditRetention),
		Cache:          store.CacheConfig{TTL: durationOr(a.StatusCacheTTL, 30*time.Second)},
		Logger:         a.logger,
		Observer:       a.observer(),
	})
	if err != nil {
		return err
	}
	a.svc = svc
	return nil
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// Validate checks durations that cannot be negative.
func (a *App) Validate() error {
	if a.AccessTokenTTL < 0 {
		return errors.New("access_token_ttl: must not be negative")
	}
	if a.RefreshTokenTTL < 0 {
		return errors.New("refresh_token_ttl: must not be negative")
	}
	if a.AuditRetention < 0 {
		return errors.New("audit_retention: must not be negative")
	}
	if a.StatusCacheTTL < 0 {
		return errors.New("status_cache_ttl: must not be negative")
	}
	if a.RefreshReuseGrace != nil && *a.RefreshReuseGrace < 0 {
		return errors.New("refresh_reuse_grace: must not be negative")
	}
	return nil
}

// Start runs the service's background workers (change feed, key reload,
// scheduled rotation), each under its own cancel and restarted after a
// failure. It does not wait on the store: the key ring loads in the
// background, and until it has, the gate answers 503 store_unavailable.
func (a *App) Start() error {
	if a.workers == nil {
		a.workers = supervise.New(a.logger)
	}
	for _, w := range a.svc.Workers() {
		a.workers.Start(w)
	}
	a.workers.Start(a.deliveryWorker())
	if a.metrics != nil {
		a.running = &telemetry.Running{Service: a.svc, Sources: a.sources}
		a.metrics.Observe(a.running) // the gauges read the running config
	}
	return nil
}

// Stop cancels the background workers and waits for them.
func (a *App) Stop() error {
	if a.workers != nil {
		a.workers.Stop()
	}
	if a.metrics != nil {
		a.metrics.Forget(a.running)
	}
	return nil
}

// Cleanup releases this config's hold on pooled sources.
func (a *App) Cleanup() error {
	for _, key := range a.pooled {
		_, _ = sourcePool.Delete(key)
	}
	if a.metKey != "" {
		_, _ = registrations.Delete(a.metKey)
	}
	return nil
}

// provisionMetrics registers the process's metrics on this config's
// registry. Metrics are not worth failing a config for: without them the
// app reports to nothing and says so.
func (a *App) provisionMetrics(ctx caddy.Context) {
	m, key, err := provisionMetrics(ctx)
	if err != nil {
		a.logger.Error("metrics unavailable", zap.Error(err))
		return
	}
	a.metrics, a.metKey = m, key
}

// observer is what the service reports to.
func (a *App) observer() gateway.Observer {
	if a.metrics == nil {
		return gateway.NopObserver{}
	}
	return a.metrics
}

// upstreamObserver is what the sources' resilience layer reports to.
func (a *App) upstreamObserver() upstreams.Observer {
	if a.metrics == nil {
		return gateway.NopObserver{}
	}
	return a.metrics
}

// Service returns the gateway service, for the handlers.
func (a *App) Service() *gateway.Service { return a.svc }

// productNames returns the configured product slugs.
func (a *App) productNames() []string {
	names := make([]string, 0, len(a.Products))
	for n := range a.Products {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

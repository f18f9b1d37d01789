package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/supervise"
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
	hooks   map[string]upstreams.HookVerifier
	// sourceBases are the sources' base URLs, by name (the portal's).
	sourceBases map[string]string
	sources     map[string]upstreams.Source
	metrics     *telemetry.Metrics    // nil: metrics unavailable (reported at provision)
	metKey      string                // registrations key held by this config
	running     *telemetry.Running    // what the gauges read while this config runs
	workers     *supervise.Supervisor // background work: run by Start, stopped by Stop

	deliveries *webhooks.Worker
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
	if err := a.checkOptions(); err != nil {
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

// checkOptions refuses the app's impossible settings before anything is
// opened, and warns about the risky ones.
func (a *App) checkOptions() error {
	if a.KeyRotation < 0 {
		return errors.New("key_rotation: must not be negative")
	}
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
	a.sourceBases = map[string]string{}
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
		a.sourceBases[name] = baseURLOf(m)
		if err := a.provisionHooks(name, m); err != nil {
			return nil, err
		}
	}
	return sources, nil
}

// provisionHooks builds a source's store webhook check, when it has one
// configured.
func (a *App) provisionHooks(name string, m SourceModule) error {
	hs, ok := m.(HookSource)
	if !ok {
		return nil
	}
	check, err := hs.BuildHooks()
	if err != nil {
		return fmt.Errorf("source %s: %w", name, err)
	}
	if check != nil {
		if a.hooks == nil {
			a.hooks = map[string]upstreams.HookVerifier{}
		}
		a.hooks[name] = check
	}
	return nil
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
		Sources: sources, Hooks: a.hooks, Products: products, ProductOrder: order,
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

// Start runs the service's background workers (change feed, key reload,
// scheduled rotation), each under its own cancel and restarted after a
// failure. It does not wait on the store: the key ring loads in the
// background, and until it has, the gate answers 503 store_unavailable.
func (a *App) Start() error {
	if a.workers == nil {
		a.workers = supervise.New(a.logger)
	}
	for _, w := range a.svc.Workers() {
		a.workers.Start(w.Name, w.Run)
	}
	dw := a.deliveryWorker()
	a.workers.Start(dw.Name, dw.Run)
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
	_ caddy.CleanerUpper = (*App)(nil)
)

package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/apptrovo"
	"github.com/licensegate/licensegate/upstreams/cpstore"
	"github.com/licensegate/licensegate/upstreams/digitaldownloads"
	"github.com/licensegate/licensegate/upstreams/envato"
	"github.com/licensegate/licensegate/upstreams/gumroad"
	"github.com/licensegate/licensegate/upstreams/keygen"
	"github.com/licensegate/licensegate/upstreams/lemonsqueezy"
)

func init() {
	caddy.RegisterModule(EnvatoSource{})
	caddy.RegisterModule(AppTrovoSource{})
	caddy.RegisterModule(DigitalDownloadsSource{})
	caddy.RegisterModule(CPStoreSource{})
	caddy.RegisterModule(LemonSqueezySource{})
	caddy.RegisterModule(GumroadSource{})
	caddy.RegisterModule(KeygenSource{})
}

// SourceOptions are the options every marketplace source has.
type SourceOptions struct {
	// BaseURL is the vendor API's root; set it for tests and staging.
	// Default: the vendor's production API.
	BaseURL string `json:"base_url,omitempty"`
	// RateLimit is the source's call budget across the instance, as
	// "<calls>/<period>" (e.g. 60/m). Default: the vendor's documented
	// limit, else 60/m.
	RateLimit string `json:"rate_limit,omitempty"`
	// Timeout bounds one call. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Concurrency bounds calls in flight. Default: 4 (Envato: 3).
	Concurrency int `json:"concurrency,omitempty"`
}

// sourceDefaults are a vendor's production API and documented limits.
type sourceDefaults struct {
	baseURL     string
	rate        string
	concurrency int
}

// marketplace is implemented by the marketplace source modules: the app
// builds each once the products' mappings are known.
type marketplace interface {
	build(products func(source string) upstreams.ProductMap) (upstreams.Source, error)
	options() (SourceOptions, sourceDefaults)
}

// sourcePool keeps each marketplace source, with its resilience state (a
// Retry-After pause, an open breaker, the rate budget), across config
// reloads that leave its configuration unchanged.
var sourcePool = caddy.NewUsagePool()

type pooledSource struct{ upstreams.Source }

func (pooledSource) Destruct() error { return nil }

// sourcePoolKey identifies a source's configuration, mappings included.
func sourcePoolKey(name string, m marketplace, products upstreams.ProductMap) string {
	raw, _ := json.Marshal(struct {
		Name     string
		Module   any
		Products upstreams.ProductMap
	}{name, m, products})
	sum := sha256.Sum256(raw)
	return "source:" + hex.EncodeToString(sum[:])
}

// pooledMarketplace returns the running config's source when this one is
// configured the same, else builds it; the caller releases key on Cleanup.
func pooledMarketplace(name string, m marketplace, products func(string) upstreams.ProductMap, logger *zap.Logger) (upstreams.Source, string, error) {
	key := sourcePoolKey(name, m, products(name))
	val, _, err := sourcePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		src, err := wrapMarketplace(name, m, products, logger)
		if err != nil {
			return nil, err
		}
		return pooledSource{src}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledSource).Source, key, nil
}

// wrapMarketplace builds a marketplace source and puts the resilience
// wrapper around it.
func wrapMarketplace(name string, m marketplace, products func(string) upstreams.ProductMap, logger *zap.Logger) (upstreams.Source, error) {
	src, err := m.build(products)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	opts, def := m.options()
	rateStr := opts.RateLimit
	if rateStr == "" {
		rateStr = def.rate
	}
	rate, err := upstreams.ParseRate(rateStr)
	if err != nil {
		return nil, fmt.Errorf("source %s: rate_limit: %w", name, err)
	}
	if opts.Timeout < 0 || opts.Concurrency < 0 {
		return nil, fmt.Errorf("source %s: timeout and concurrency must not be negative", name)
	}
	conc := opts.Concurrency
	if conc == 0 {
		conc = def.concurrency
	}
	return upstreams.NewResilient(src, upstreams.ResilienceConfig{
		Timeout: time.Duration(opts.Timeout), Rate: rate, Concurrency: conc,
		OnUnknown: unknownLogger(logger),
	}), nil
}

// unknownLogger reports failed upstream calls; a refused author credential
// is an error the author must act on, anything else a warning.
func unknownLogger(logger *zap.Logger) func(string, error) {
	return func(source string, cause error) {
		var auth *upstreams.AuthorCredentialError
		if errors.As(cause, &auth) {
			logger.Error("marketplace refused the author's credentials; activations from it answer 503 until fixed",
				zap.String("source", source), zap.Int("status", auth.Status))
			return
		}
		if c := logger.Check(zap.WarnLevel, "marketplace answer unusable; nothing changed"); c != nil {
			c.Write(zap.String("source", source), zap.Error(cause))
		}
	}
}

func baseURL(o SourceOptions, d sourceDefaults) string {
	if o.BaseURL != "" {
		return o.BaseURL
	}
	return d.baseURL
}

// resolveSecret expands {env.X} and {file.X} placeholders of a credential.
func resolveSecret(option, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	out, err := caddy.NewReplacer().ReplaceOrErr(v, true, true)
	if err != nil {
		return "", fmt.Errorf("%s: %w", option, err)
	}
	return out, nil
}

// EnvatoSource verifies Envato (CodeCanyon, ThemeForest) purchase codes
// with the author's personal token.
type EnvatoSource struct {
	SourceOptions
	// Token is the author's Envato personal token, e.g.
	// "{env.ENVATO_TOKEN}". Required.
	Token string `json:"token,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (EnvatoSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.envato", New: func() caddy.Module { return new(EnvatoSource) }}
}

func (s *EnvatoSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://api.envato.com", rate: "60/m", concurrency: 3}
}

func (s *EnvatoSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	token, err := resolveSecret("token", s.Token)
	if err != nil {
		return nil, err
	}
	o, d := s.options()
	return envato.New(envato.Config{BaseURL: baseURL(o, d), Token: token, Products: products("envato")})
}

// AppTrovoSource verifies AppTrovo licence keys.
type AppTrovoSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (AppTrovoSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.apptrovo", New: func() caddy.Module { return new(AppTrovoSource) }}
}

func (s *AppTrovoSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://apptrovo.com", rate: "120/m", concurrency: 4}
}

func (s *AppTrovoSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	o, d := s.options()
	return apptrovo.New(apptrovo.Config{BaseURL: baseURL(o, d), Products: products("apptrovo")})
}

// DigitalDownloadsSource verifies Digital Downloads Pro (Shopify) licence
// keys; each product names its licence-key list token.
type DigitalDownloadsSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (DigitalDownloadsSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.digitaldownloads", New: func() caddy.Module { return new(DigitalDownloadsSource) }}
}

func (s *DigitalDownloadsSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://api.digitaldownloadsapp.com", rate: "60/m", concurrency: 4}
}

func (s *DigitalDownloadsSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	o, d := s.options()
	return digitaldownloads.New(digitaldownloads.Config{BaseURL: baseURL(o, d), Products: products("digitaldownloads")})
}

// CPStoreSource verifies "CP-" keys of a self-hosted store; base_url is
// required.
type CPStoreSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (CPStoreSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.cpstore", New: func() caddy.Module { return new(CPStoreSource) }}
}

func (s *CPStoreSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{rate: "60/m", concurrency: 4}
}

func (s *CPStoreSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	if s.BaseURL == "" {
		return nil, errors.New("base_url is required (the store's own address)")
	}
	return cpstore.New(cpstore.Config{BaseURL: s.BaseURL, Products: products("cpstore")})
}

// LemonSqueezySource verifies Lemon Squeezy licence keys.
type LemonSqueezySource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (LemonSqueezySource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.lemonsqueezy", New: func() caddy.Module { return new(LemonSqueezySource) }}
}

func (s *LemonSqueezySource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://api.lemonsqueezy.com", rate: "60/m", concurrency: 4}
}

func (s *LemonSqueezySource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	o, d := s.options()
	return lemonsqueezy.New(lemonsqueezy.Config{BaseURL: baseURL(o, d), Products: products("lemonsqueezy")})
}

// GumroadSource verifies Gumroad licence keys; each product names its
// Gumroad product_id.
type GumroadSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (GumroadSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.gumroad", New: func() caddy.Module { return new(GumroadSource) }}
}

func (s *GumroadSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://api.gumroad.com", rate: "60/m", concurrency: 4}
}

func (s *GumroadSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	o, d := s.options()
	return gumroad.New(gumroad.Config{BaseURL: baseURL(o, d), Products: products("gumroad")})
}

// KeygenSource verifies Keygen licence keys of one account.
type KeygenSource struct {
	SourceOptions
	// Account is the Keygen account id or slug. Required.
	Account string `json:"account,omitempty"`
	// Token is an optional product token, for accounts that protect
	// validation.
	Token string `json:"token,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (KeygenSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.keygen", New: func() caddy.Module { return new(KeygenSource) }}
}

func (s *KeygenSource) options() (SourceOptions, sourceDefaults) {
	return s.SourceOptions, sourceDefaults{baseURL: "https://api.keygen.sh", rate: "60/m", concurrency: 4}
}

func (s *KeygenSource) build(products func(string) upstreams.ProductMap) (upstreams.Source, error) {
	token, err := resolveSecret("token", s.Token)
	if err != nil {
		return nil, err
	}
	account, err := resolveSecret("account", s.Account)
	if err != nil {
		return nil, err
	}
	o, d := s.options()
	return keygen.New(keygen.Config{BaseURL: baseURL(o, d), Account: account, Token: token, Products: products("keygen")})
}

// Interface guards
var (
	_ marketplace = (*EnvatoSource)(nil)
	_ marketplace = (*AppTrovoSource)(nil)
	_ marketplace = (*DigitalDownloadsSource)(nil)
	_ marketplace = (*CPStoreSource)(nil)
	_ marketplace = (*LemonSqueezySource)(nil)
	_ marketplace = (*GumroadSource)(nil)
	_ marketplace = (*KeygenSource)(nil)
)

package caddymodule

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/upstreams"
)

// sourceNamespace is the guest-module namespace of licence sources: a
// module licensegate.sources.NAME is configured by "source NAME { ... }".
const sourceNamespace = "licensegate.sources"

// SourceModule is a licence source guest module (licensegate.sources.NAME),
// built-in or third-party. The app builds it once every product's mappings
// are known, wraps what it builds in the resilience layer (timeout, rate
// budget, breaker, coalescing, negative cache) and keeps it across config
// reloads that leave its configuration unchanged.
//
// A module also implements caddyfile.Unmarshaler for its own block: it is
// handed the tokens "NAME [args] { ... }" of "source NAME ...".
type SourceModule interface {
	caddy.Module
	// MappingOption names the product block's option that ties one of our
	// products to the source's own product ids (envato_item, ...), and
	// whether a product sold there must set it. "" when it has none.
	MappingOption() (option string, required bool)
	// Options returns the options every source has, and the
	// defaults for those left unset.
	Options() (SourceOptions, SourceDefaults)
	// BuildSource builds the source. It makes no call to the vendor.
	BuildSource(SourceConfig) (upstreams.Source, error)
}

// HookSource is a source module whose store sends webhooks, received by
// license_hooks (SPEC section 7).
type HookSource interface {
	// BuildHooks builds the webhook check from the configured secrets:
	// nil when none is set (the source's webhooks answer 404).
	BuildHooks() (upstreams.HookVerifier, error)
}

// buildHooks resolves a webhook check's options ({env.X}, {file.X}),
// given as option name and value pairs, and builds the check with them:
// nil when none is set, an error naming the ones missing when some are.
func buildHooks(build func(vals []string) (upstreams.HookVerifier, error), pairs ...string) (upstreams.HookVerifier, error) {
	var vals, missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		v, err := resolveSecret(pairs[i], pairs[i+1])
		if err != nil {
			return nil, err
		}
		if v == "" {
			missing = append(missing, pairs[i])
		}
		vals = append(vals, v)
	}
	switch {
	case len(missing) == len(vals):
		return nil, nil
	case len(missing) > 0:
		return nil, fmt.Errorf("store webhooks need %s too", strings.Join(missing, " and "))
	}
	return build(vals)
}

// SourceOptions are the options every source has (Caddyfile: base_url,
// rate_limit, timeout, concurrency). A source module embeds them.
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

// SourceDefaults are a vendor's production API and documented limits.
type SourceDefaults struct {
	BaseURL     string
	RateLimit   string // default 60/m
	Concurrency int    // default 4
}

// SourceConfig is what a source is built with.
type SourceConfig struct {
	// Name is the source's name: the module's, as the Caddyfile says it.
	Name string
	// BaseURL is base_url, or the vendor's default.
	BaseURL string
	// Products ties our product slugs to the source's product ids, from
	// the products' mapping option, placeholders resolved.
	Products upstreams.ProductMap
	// Client is the HTTP client the source must send every request
	// through: each spends one call of its rate budget.
	Client upstreams.Client
}

// sourcePool keeps each source, with its resilience state (a Retry-After
// pause, an open breaker, the rate budget), across config reloads that
// leave its configuration unchanged.
var sourcePool = caddy.NewUsagePool()

type pooledSource struct{ upstreams.Source }

func (pooledSource) Destruct() error { return nil }

// sourcePoolKey identifies a source's configuration, mappings included,
// with every placeholder resolved: a rotated {file.…} token is another
// configuration. The key is a hash, as it holds credentials.
func sourcePoolKey(name string, m SourceModule, products upstreams.ProductMap) (string, error) {
	module, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", name, err)
	}
	resolved := caddy.NewReplacer().ReplaceKnown(string(module), "")
	raw, err := json.Marshal(struct {
		Name     string
		Module   string
		Products upstreams.ProductMap
	}{name, resolved, products})
	if err != nil {
		return "", fmt.Errorf("source %s: %w", name, err)
	}
	sum := sha256.Sum256(raw)
	return "source:" + hex.EncodeToString(sum[:]), nil
}

// loadPooledSource returns the running config's source when this one is
// configured the same, else builds it; the caller releases key on Cleanup.
func loadPooledSource(name string, m SourceModule, products upstreams.ProductMap, logger *zap.Logger, obs upstreams.Observer) (upstreams.Source, string, error) {
	key, err := sourcePoolKey(name, m, products)
	if err != nil {
		return nil, "", err
	}
	val, _, err := sourcePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		src, err := buildSource(name, m, products, logger, obs)
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

// buildSource builds a source with the Client of its resilience wrapper,
// and returns it wrapped, reporting to obs.
func buildSource(name string, m SourceModule, products upstreams.ProductMap, logger *zap.Logger, obs upstreams.Observer) (upstreams.Source, error) {
	opts, def := m.Options()
	cfg, err := resilienceConfig(opts, def, logger)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	cfg.Observer = obs
	base := baseURLOf(m)
	src, err := upstreams.BuildResilient(cfg, func(c upstreams.Client) (upstreams.Source, error) {
		return m.BuildSource(SourceConfig{Name: name, BaseURL: base, Products: products, Client: c})
	})
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	return src, nil
}

// baseURLOf is a source's base_url, or its vendor's production API.
func baseURLOf(m SourceModule) string {
	opts, def := m.Options()
	return cmp.Or(opts.BaseURL, def.BaseURL)
}

// resilienceConfig checks a source's common options and applies the
// vendor's defaults.
func resilienceConfig(opts SourceOptions, def SourceDefaults, logger *zap.Logger) (upstreams.ResilienceConfig, error) {
	rateStr := opts.RateLimit
	if rateStr == "" {
		rateStr = def.RateLimit
	}
	if rateStr == "" {
		rateStr = "60/m"
	}
	rate, err := upstreams.ParseRate(rateStr)
	if err != nil {
		return upstreams.ResilienceConfig{}, fmt.Errorf("rate_limit: %w", err)
	}
	if opts.Timeout < 0 || opts.Concurrency < 0 {
		return upstreams.ResilienceConfig{}, errors.New("timeout and concurrency must not be negative")
	}
	conc := opts.Concurrency
	if conc == 0 {
		conc = def.Concurrency
	}
	return upstreams.ResilienceConfig{
		Timeout: time.Duration(opts.Timeout), Rate: rate, Concurrency: conc,
		OnUnknown: unknownLogger(logger),
	}, nil
}

// unknownLogger reports failed source calls, once each: a refused author
// credential is an error the author must act on, anything else a warning.
func unknownLogger(logger *zap.Logger) func(string, error) {
	return func(source string, cause error) {
		var auth *upstreams.AuthorCredentialError
		if errors.As(cause, &auth) {
			logger.Error("source refused the author's credentials; activations from it answer 503 until fixed",
				zap.String("source", source), zap.Int("status", auth.Status))
			return
		}
		if c := logger.Check(zap.WarnLevel, "source answer unusable; nothing changed"); c != nil {
			c.Write(zap.String("source", source), zap.Error(cause))
		}
	}
}

// sourceModule returns a new, unconfigured source module by name.
func sourceModule(name string) (SourceModule, error) {
	info, err := caddy.GetModule(sourceNamespace + "." + name)
	if err != nil {
		return nil, fmt.Errorf("unknown source %q", name)
	}
	m, ok := info.New().(SourceModule)
	if !ok {
		return nil, fmt.Errorf("module %s is not a licence source", info.ID)
	}
	return m, nil
}

// sourceMapping returns the mapping option of the named source, and
// whether it is required.
func sourceMapping(name string) (option string, required bool, err error) {
	m, err := sourceModule(name)
	if err != nil {
		return "", false, err
	}
	option, required = m.MappingOption()
	return option, required, nil
}

// mappingSource returns the registered source whose mapping option is
// option: the product block's options beyond its own are theirs.
func mappingSource(option string) (string, bool) {
	for _, info := range caddy.GetModules(sourceNamespace) {
		if m, ok := info.New().(SourceModule); ok {
			if opt, _ := m.MappingOption(); opt != "" && opt == option {
				return info.ID.Name(), true
			}
		}
	}
	return "", false
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

// UnmarshalOption reads one of the options every source has, at d's
// current token, for source: base_url, rate_limit, timeout, concurrency.
// It reports whether the option was one of them. A source module's
// UnmarshalCaddyfile calls it for each option of its block.
func (o *SourceOptions) UnmarshalOption(d *caddyfile.Dispenser, source string) (bool, error) {
	switch d.Val() {
	case "base_url":
		return true, singleArg(d, &o.BaseURL)
	case "rate_limit":
		if err := singleArg(d, &o.RateLimit); err != nil {
			return true, err
		}
		if _, err := upstreams.ParseRate(o.RateLimit); err != nil {
			return true, d.Errf("source %s: rate_limit: %v", source, err)
		}
	case "timeout":
		return true, durationArg(d, &o.Timeout)
	case "concurrency":
		return true, positiveArg(d, "source "+source, &o.Concurrency)
	default:
		return false, nil
	}
	return true, nil
}

// sourceBlock is how a source module reads its Caddyfile block:
//
//	<name> {
//		base_url <url>
//		rate_limit <calls>/<period>
//		timeout <duration>
//		concurrency <n>
//		<option> <value>   # the source's own, e.g. token (envato, keygen)
//		<flag>             # the source's own, e.g. allow_test_mode
//	}
type sourceBlock struct {
	common *SourceOptions     // nil: the source has none of the common options
	values map[string]*string // the source's own options with one value
	flags  map[string]*bool   // the source's own options with none
}

func (b sourceBlock) unmarshal(d *caddyfile.Dispenser) error {
	d.Next() // the source's name
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if b.common != nil {
			if ok, err := b.common.UnmarshalOption(d, name); ok || err != nil {
				if err != nil {
					return err
				}
				continue
			}
		}
		if err := b.own(d, name); err != nil {
			return err
		}
	}
	return nil
}

// own reads one of the source's own options at d's current token.
func (b sourceBlock) own(d *caddyfile.Dispenser, name string) error {
	if dst, ok := b.values[d.Val()]; ok {
		return singleArg(d, dst)
	}
	if dst, ok := b.flags[d.Val()]; ok {
		if d.NextArg() {
			return d.ArgErr()
		}
		*dst = true
		return nil
	}
	return d.Errf("source %s: unrecognized option %q", name, d.Val())
}

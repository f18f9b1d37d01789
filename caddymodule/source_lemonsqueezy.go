package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/lemonsqueezy"
)

func init() {
	caddy.RegisterModule(LemonSqueezySource{})
}

// LemonSqueezySource verifies Lemon Squeezy licence keys; each product
// names its Lemon Squeezy product ids (lemonsqueezy_product).
type LemonSqueezySource struct {
	SourceOptions
	// AllowTestMode accepts keys bought in test mode, for a staging
	// gateway. Default: false, they are refused as wrong_product.
	AllowTestMode bool `json:"allow_test_mode,omitempty"`
	// WebhookSecret is the signing secret of the store's webhook
	// (Settings, Webhooks), for license_hooks. Default: none.
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (LemonSqueezySource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.lemonsqueezy", New: func() caddy.Module { return new(LemonSqueezySource) }}
}

// MappingOption implements SourceModule.
func (*LemonSqueezySource) MappingOption() (string, bool) { return "lemonsqueezy_product", true }

// Options implements SourceModule.
func (s *LemonSqueezySource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://api.lemonsqueezy.com"}
}

// BuildSource implements SourceModule.
func (s *LemonSqueezySource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	return lemonsqueezy.New(lemonsqueezy.Config{BaseURL: c.BaseURL, Products: c.Products, Client: c.Client, AllowTestMode: s.AllowTestMode})
}

// BuildHooks implements HookSource.
func (s *LemonSqueezySource) BuildHooks() (upstreams.HookVerifier, error) {
	return buildHooks(func(v []string) (upstreams.HookVerifier, error) { return lemonsqueezy.NewHooks(v[0]) }, "webhook_secret", s.WebhookSecret)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	lemonsqueezy { allow_test_mode; webhook_secret <secret>; base_url, rate_limit, timeout, concurrency }
func (s *LemonSqueezySource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions, values: map[string]*string{"webhook_secret": &s.WebhookSecret}, flags: map[string]*bool{"allow_test_mode": &s.AllowTestMode}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*LemonSqueezySource)(nil)
	_ HookSource            = (*LemonSqueezySource)(nil)
	_ caddyfile.Unmarshaler = (*LemonSqueezySource)(nil)
)

package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/digitaldownloads"
)

func init() {
	caddy.RegisterModule(DigitalDownloadsSource{})
}

// DigitalDownloadsSource verifies Digital Downloads Pro (Shopify) licence
// keys; each product names its licence-key list tokens (ddp_list_token).
type DigitalDownloadsSource struct {
	SourceOptions
	// ShopifyWebhookSecret is the secret Shopify signs the store's
	// webhooks with (Settings, Notifications, Webhooks), for
	// license_hooks. Default: none.
	ShopifyWebhookSecret string `json:"shopify_webhook_secret,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (DigitalDownloadsSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.digitaldownloads", New: func() caddy.Module { return new(DigitalDownloadsSource) }}
}

// MappingOption implements SourceModule.
func (*DigitalDownloadsSource) MappingOption() (string, bool) { return "ddp_list_token", true }

// Options implements SourceModule.
func (s *DigitalDownloadsSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://api.digitaldownloadsapp.com"}
}

// BuildSource implements SourceModule.
func (s *DigitalDownloadsSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	return digitaldownloads.New(digitaldownloads.Config{BaseURL: c.BaseURL, Products: c.Products, Client: c.Client})
}

// BuildHooks implements HookSource.
func (s *DigitalDownloadsSource) BuildHooks() (upstreams.HookVerifier, error) {
	return buildHooks(func(v []string) (upstreams.HookVerifier, error) { return digitaldownloads.NewHooks(v[0]) },
		"shopify_webhook_secret", s.ShopifyWebhookSecret)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *DigitalDownloadsSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions, values: map[string]*string{"shopify_webhook_secret": &s.ShopifyWebhookSecret}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*DigitalDownloadsSource)(nil)
	_ HookSource            = (*DigitalDownloadsSource)(nil)
	_ caddyfile.Unmarshaler = (*DigitalDownloadsSource)(nil)
)

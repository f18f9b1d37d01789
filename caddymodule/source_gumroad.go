package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/gumroad"
)

func init() {
	caddy.RegisterModule(GumroadSource{})
}

// GumroadSource verifies Gumroad licence keys; each product names its
// Gumroad product ids (gumroad_product).
type GumroadSource struct {
	SourceOptions
	// WebhookPathToken is the secret last segment of the Ping URL given
	// to Gumroad (Gumroad signs nothing), and SellerID the seller_id its
	// pings carry, for license_hooks. Default: none.
	WebhookPathToken string `json:"webhook_path_token,omitempty"`
	SellerID         string `json:"seller_id,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (GumroadSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.gumroad", New: func() caddy.Module { return new(GumroadSource) }}
}

// MappingOption implements SourceModule.
func (*GumroadSource) MappingOption() (string, bool) { return "gumroad_product", true }

// Options implements SourceModule.
func (s *GumroadSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://api.gumroad.com"}
}

// BuildSource implements SourceModule.
func (s *GumroadSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	return gumroad.New(gumroad.Config{BaseURL: c.BaseURL, Products: c.Products, Client: c.Client})
}

// BuildHooks implements HookSource.
func (s *GumroadSource) BuildHooks() (upstreams.HookVerifier, error) {
	return buildHooks(func(v []string) (upstreams.HookVerifier, error) { return gumroad.NewHooks(v[0], v[1]) },
		"webhook_path_token", s.WebhookPathToken, "seller_id", s.SellerID)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *GumroadSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions, values: map[string]*string{"webhook_path_token": &s.WebhookPathToken, "seller_id": &s.SellerID}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*GumroadSource)(nil)
	_ HookSource            = (*GumroadSource)(nil)
	_ caddyfile.Unmarshaler = (*GumroadSource)(nil)
)

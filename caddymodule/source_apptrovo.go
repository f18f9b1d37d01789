package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/apptrovo"
)

func init() {
	caddy.RegisterModule(AppTrovoSource{})
}

// AppTrovoSource verifies AppTrovo licence keys; a product may name its
// AppTrovo slugs (apptrovo_slug), else AppTrovo resolves it from the key.
type AppTrovoSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (AppTrovoSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.apptrovo", New: func() caddy.Module { return new(AppTrovoSource) }}
}

// MappingOption implements SourceModule.
func (*AppTrovoSource) MappingOption() (string, bool) { return "apptrovo_slug", false }

// Options implements SourceModule.
func (s *AppTrovoSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://apptrovo.com", RateLimit: "120/m"}
}

// BuildSource implements SourceModule.
func (s *AppTrovoSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	return apptrovo.New(apptrovo.Config{BaseURL: c.BaseURL, Products: c.Products, Client: c.Client})
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *AppTrovoSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*AppTrovoSource)(nil)
	_ caddyfile.Unmarshaler = (*AppTrovoSource)(nil)
)

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

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *DigitalDownloadsSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*DigitalDownloadsSource)(nil)
	_ caddyfile.Unmarshaler = (*DigitalDownloadsSource)(nil)
)

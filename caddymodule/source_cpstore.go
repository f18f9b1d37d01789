package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/cpstore"
)

func init() {
	caddy.RegisterModule(CPStoreSource{})
}

// CPStoreSource verifies "CP-" keys of a self-hosted store; base_url is
// required, and each product names its product names there
// (cpstore_product).
type CPStoreSource struct {
	SourceOptions
}

// CaddyModule returns the Caddy module information.
func (CPStoreSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.cpstore", New: func() caddy.Module { return new(CPStoreSource) }}
}

// MappingOption implements SourceModule.
func (*CPStoreSource) MappingOption() (string, bool) { return "cpstore_product", true }

// Options implements SourceModule.
func (s *CPStoreSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{}
}

// BuildSource implements SourceModule.
func (s *CPStoreSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	if c.BaseURL == "" {
		return nil, errors.New("base_url is required (the store's own address)")
	}
	return cpstore.New(cpstore.Config{BaseURL: c.BaseURL, Products: c.Products, Client: c.Client})
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *CPStoreSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*CPStoreSource)(nil)
	_ caddyfile.Unmarshaler = (*CPStoreSource)(nil)
)

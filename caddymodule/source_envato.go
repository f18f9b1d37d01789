package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/envato"
)

func init() {
	caddy.RegisterModule(EnvatoSource{})
}

// EnvatoSource verifies Envato (CodeCanyon, ThemeForest) purchase codes
// with the author's personal token; each product names its Envato item ids
// (envato_item).
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

// MappingOption implements SourceModule.
func (*EnvatoSource) MappingOption() (string, bool) { return "envato_item", true }

// Options implements SourceModule.
func (s *EnvatoSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://api.envato.com", Concurrency: 3}
}

// BuildSource implements SourceModule.
func (s *EnvatoSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	token, err := resolveSecret("token", s.Token)
	if err != nil {
		return nil, err
	}
	return envato.New(envato.Config{BaseURL: c.BaseURL, Token: token, Products: c.Products, Client: c.Client})
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	envato { token <token>; base_url, rate_limit, timeout, concurrency }
func (s *EnvatoSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions, values: map[string]*string{"token": &s.Token}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*EnvatoSource)(nil)
	_ caddyfile.Unmarshaler = (*EnvatoSource)(nil)
)

package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/keygen"
)

func init() {
	caddy.RegisterModule(KeygenSource{})
}

// KeygenSource verifies Keygen licence keys of one account; each product
// names its Keygen product ids (keygen_product).
type KeygenSource struct {
	SourceOptions
	// Account is the Keygen account id or slug. Required.
	Account string `json:"account,omitempty"`
	// Token is an optional product or admin token, for accounts that
	// protect validation. The background recheck needs it (it reads the
	// licence, which only a token may), and with it the licence type is
	// the Keygen policy's name; without it the type is "regular".
	Token string `json:"token,omitempty"`
	// Environment is a Keygen environment's id or code, sent as the
	// Keygen-Environment header. Default: none (the global environment).
	Environment string `json:"environment,omitempty"`
	// WebhookPublicKey is the account's Ed25519 public key, hex-encoded as
	// its dashboard shows it, for license_hooks. Default: none.
	WebhookPublicKey string `json:"webhook_public_key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (KeygenSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.keygen", New: func() caddy.Module { return new(KeygenSource) }}
}

// MappingOption implements SourceModule.
func (*KeygenSource) MappingOption() (string, bool) { return "keygen_product", true }

// Options implements SourceModule.
func (s *KeygenSource) Options() (SourceOptions, SourceDefaults) {
	return s.SourceOptions, SourceDefaults{BaseURL: "https://api.keygen.sh"}
}

// BuildSource implements SourceModule.
func (s *KeygenSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	token, err := resolveSecret("token", s.Token)
	if err != nil {
		return nil, err
	}
	account, err := resolveSecret("account", s.Account)
	if err != nil {
		return nil, err
	}
	env, err := resolveSecret("environment", s.Environment)
	if err != nil {
		return nil, err
	}
	return keygen.New(keygen.Config{BaseURL: c.BaseURL, Account: account, Token: token, Environment: env, Products: c.Products, Client: c.Client})
}

// BuildHooks implements HookSource.
func (s *KeygenSource) BuildHooks() (upstreams.HookVerifier, error) {
	return buildHooks(func(v []string) (upstreams.HookVerifier, error) { return keygen.NewHooks(v[0]) }, "webhook_public_key", s.WebhookPublicKey)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	keygen { account <account>; token <token>; environment <id>; base_url, rate_limit, ... }
func (s *KeygenSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{common: &s.SourceOptions, values: map[string]*string{"token": &s.Token, "account": &s.Account, "environment": &s.Environment, "webhook_public_key": &s.WebhookPublicKey}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*KeygenSource)(nil)
	_ HookSource            = (*KeygenSource)(nil)
	_ caddyfile.Unmarshaler = (*KeygenSource)(nil)
)

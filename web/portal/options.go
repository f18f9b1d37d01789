package portal

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/envato"
	"github.com/licensegate/licensegate/web"
)

// Options are the portal's settings as an author writes them (the Caddy
// module's JSON and Caddyfile).
type Options struct {
	// BasePath is where the portal lives. Default: EnvatoOAuth's
	// redirect_uri path less /auth/envato/callback, else /account.
	BasePath string `json:"base_path,omitempty"`
	// Products limits the portal to these products. Default: all.
	Products []string `json:"products,omitempty"`
	// EnvatoOAuth is "Sign in with Envato" (none: not offered).
	EnvatoOAuth *EnvatoOAuth `json:"envato_oauth,omitempty"`
	// SessionTTL is how long a sign-in lasts, in nanoseconds (Caddy
	// durations). Default: 12h.
	SessionTTL time.Duration `json:"session_ttl,omitempty"`
}

// EnvatoOAuth configures "Sign in with Envato": the app registered at
// build.envato.com (client id and secret, its redirect URI, which must be
// {base_path}/auth/envato/callback), and the source whose licences the
// buyer's purchases are (default envato). BaseURL defaults to that
// source's.
type EnvatoOAuth struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	RedirectURI  string `json:"redirect_uri,omitempty"`
	BaseURL      string `json:"base_url,omitempty"`
	Source       string `json:"source,omitempty"`
}

// Env is what the portal is built with besides its options.
type Env struct {
	Service *gateway.Service
	Master  *secret.Master
	Logger  *zap.Logger
	// Source finds a configured source: its resilience wrapper (whose
	// budget and breaker a sign-in spends), its product mappings and its
	// base URL.
	Source func(name string) (*upstreams.Resilient, upstreams.ProductMap, string, bool)
	// Secret resolves a secret option's value ({env.X}, {file./path});
	// nil takes it as written.
	Secret func(option, value string) (string, error)
}

// Build checks o and builds the portal, and tells the service where it
// is (for the 409's portal_url) when the redirect URI names its origin.
func Build(o Options, env Env) (*Portal, error) {
	cfg := Config{BasePath: o.basePath(), Products: o.Products, Service: env.Service, Logger: env.Logger}
	var err error
	if cfg.Sessions, err = web.NewSessions(web.SessionsConfig{Master: env.Master, CookieName: "__Host-licensegate_portal", TTL: o.SessionTTL}); err != nil {
		return nil, err
	}
	if oa := o.EnvatoOAuth; oa != nil {
		if cfg.Envato, cfg.EnvatoSource, err = oa.directory(env); err != nil {
			return nil, fmt.Errorf("envato_oauth: %w", err)
		}
		if u, err := url.Parse(oa.RedirectURI); err == nil && u.Host != "" && env.Service != nil {
			env.Service.SetPortal(u.Scheme+"://"+u.Host+cfg.BasePath, o.Products)
		}
	}
	return New(cfg)
}

// basePath is BasePath or its default.
func (o Options) basePath() string {
	if o.BasePath != "" {
		return strings.TrimSuffix(o.BasePath, "/")
	}
	if oa := o.EnvatoOAuth; oa != nil {
		if u, err := url.Parse(oa.RedirectURI); err == nil {
			if base, ok := strings.CutSuffix(u.Path, "/auth/envato/callback"); ok {
				return base
			}
		}
	}
	return "/account"
}

// directory builds Sign in with Envato on the source's client, budget and
// breaker: a sign-in spends the recheck share, never an activation's call.
func (oa *EnvatoOAuth) directory(env Env) (upstreams.BuyerDirectory, string, error) {
	name := oa.Source
	if name == "" {
		name = "envato"
	}
	res, products, base, ok := env.Source(name)
	if !ok {
		return nil, "", fmt.Errorf("source %s is not configured", name)
	}
	secret := oa.ClientSecret
	if env.Secret != nil {
		var err error
		if secret, err = env.Secret("client_secret", secret); err != nil {
			return nil, "", err
		}
	}
	if oa.BaseURL != "" {
		base = oa.BaseURL
	}
	b, err := envato.NewBuyer(envato.BuyerConfig{BaseURL: base, Client: res.BuyerClient(), Products: products,
		ClientID: oa.ClientID, ClientSecret: secret, RedirectURL: oa.RedirectURI})
	if err != nil {
		return nil, "", err
	}
	return res.GuardBuyer(b), name, nil
}

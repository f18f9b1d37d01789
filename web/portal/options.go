package portal

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
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
	// EmailLink is the sign-in by e-mail link (none: not offered).
	EmailLink *EmailLink `json:"email_link,omitempty"`
	// PublicURL is the portal's address as buyers reach it, which mailed
	// links start with. Default: EnvatoOAuth's redirect_uri less
	// /auth/envato/callback.
	PublicURL string `json:"public_url,omitempty"`
	// SignInLimit bounds sign-ins per client network, "<n>/<period>"
	// (each costs marketplace calls). Default: 20/10m.
	SignInLimit string `json:"sign_in_limit,omitempty"`
	// SessionTTL is how long a sign-in lasts, in nanoseconds (Caddy
	// durations). Default: 12h.
	SessionTTL time.Duration `json:"session_ttl,omitempty"`
}

// EmailLink configures the sign-in by e-mail link: the SMTP server
// (smtp://user:pass@host:587 with STARTTLS, or smtps:// for TLS), the From
// address, and how long a link is valid (a Go duration, default 15m).
type EmailLink struct {
	SMTP    string `json:"smtp,omitempty"`
	From    string `json:"from,omitempty"`
	LinkTTL string `json:"link_ttl,omitempty"`
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
	// ClientIP is where a request came from (Caddy's, honouring
	// trusted_proxies); nil: its remote address.
	ClientIP func(*http.Request) string
	// MailTLS, when set, is the TLS configuration of the SMTP connection
	// (tests pin their server's certificate).
	MailTLS *tls.Config
}

// Build checks o and builds the portal, and tells the service where it
// is (for the 409's portal_url) when the redirect URI names its origin.
func Build(o Options, env Env) (*Portal, error) {
	cfg := Config{BasePath: o.basePath(), Products: o.Products, Service: env.Service, Logger: env.Logger, ClientIP: env.ClientIP}
	var err error
	if cfg.Sessions, err = web.NewSessions(web.SessionsConfig{Master: env.Master, CookieName: "__Host-licensegate_portal",
		TTL: o.SessionTTL, LocalDevelopment: isLocalhost(o.publicURL())}); err != nil {
		return nil, err
	}
	if oa := o.EnvatoOAuth; oa != nil {
		if cfg.Envato, cfg.EnvatoSource, err = oa.directory(env); err != nil {
			return nil, fmt.Errorf("envato_oauth: %w", err)
		}
	}
	if pub := o.publicURL(); pub != "" && env.Service != nil {
		env.Service.SetPortal(pub, o.Products)
	}
	if o.SignInLimit != "" {
		rate, err := upstreams.ParseRate(o.SignInLimit)
		if err != nil {
			return nil, fmt.Errorf("sign_in_limit: %w", err)
		}
		cfg.SignInLimit = httpapi.NewLimiter(rate)
	}
	if o.EmailLink != nil {
		if cfg.Email, err = o.emailConfig(env); err != nil {
			return nil, fmt.Errorf("email_link: %w", err)
		}
	}
	return New(cfg)
}

// emailConfig builds the e-mail sign-in from its options.
func (o Options) emailConfig(env Env) (*EmailConfig, error) {
	el := o.EmailLink
	smtpURL := el.SMTP
	if env.Secret != nil {
		var err error
		if smtpURL, err = env.Secret("smtp", smtpURL); err != nil {
			return nil, err
		}
	}
	m, err := NewSMTPMailer(smtpURL, el.From, env.MailTLS)
	if err != nil {
		return nil, err
	}
	e := &EmailConfig{Mailer: m, PublicURL: o.publicURL()}
	if e.PublicURL == "" {
		return nil, errors.New("set the portal's public_url (https://licenses.example.com/account): the mailed links start with it")
	}
	if el.LinkTTL != "" {
		if e.LinkTTL, err = time.ParseDuration(el.LinkTTL); err != nil || e.LinkTTL < time.Minute {
			return nil, fmt.Errorf("link_ttl: %q is not a duration of at least 1m", el.LinkTTL)
		}
	}
	return e, nil
}

// isLocalhost says whether a public URL is plain HTTP on this machine:
// only then may the portal's cookies go without Secure.
func isLocalhost(public string) bool {
	u, err := url.Parse(public)
	if err != nil || u.Scheme != "http" {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// publicURL is PublicURL or the one the Envato redirect URI implies.
func (o Options) publicURL() string {
	if o.PublicURL != "" {
		return strings.TrimSuffix(o.PublicURL, "/")
	}
	if oa := o.EnvatoOAuth; oa != nil {
		if u, err := url.Parse(oa.RedirectURI); err == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host + o.basePath()
		}
	}
	return ""
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

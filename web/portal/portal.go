// Package portal is the buyer portal (SPEC section 12): a buyer signs in
// with their marketplace account, sees the licences that sign-in proved,
// frees a slot by deactivating an installation, says "I renewed my
// support", and downloads their data. Pages are server-rendered with the
// web kit and work without JavaScript.
//
// A purchase code alone never proves ownership here: a leaked code's
// holder has it too. Only a sign-in does, and the session holds the ids of
// the licences it proved, nothing else.
package portal

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/web"
)

//go:embed templates/*.html
var templatesFS embed.FS

// Config is what a Portal is built from.
type Config struct {
	// BasePath is the portal's path prefix, e.g. "/account".
	BasePath string
	// Products limits the portal to these products (none: every product).
	Products []string
	Service  *gateway.Service
	Sessions *web.Sessions
	// Envato is "Sign in with Envato" (nil: not offered), and
	// EnvatoSource the source whose licences its purchases are.
	Envato       upstreams.BuyerDirectory
	EnvatoSource string
	// Email is the sign-in by e-mail link (nil: not offered).
	Email *EmailConfig
	// ClientIP is where a request came from (nil: its remote address).
	ClientIP func(*http.Request) string
	// SignInLimit limits sign-ins per client network: each callback costs
	// the marketplace calls (nil: 20 per 10 minutes).
	SignInLimit *httpapi.Limiter
	Logger      *zap.Logger
}

// Portal is the portal's http.Handler.
type Portal struct {
	cfg     Config
	rd      *web.Renderer
	base    string
	log     *zap.Logger
	sending chan struct{} // one token per mail in flight
}

// New builds the portal, parsing its pages (an error here is a bug or a
// bad base path, caught at provision).
func New(cfg Config) (*Portal, error) {
	base := strings.TrimSuffix(cfg.BasePath, "/")
	pages, err := fs.Sub(templatesFS, "templates")
	if err != nil {
		return nil, err
	}
	rd, err := web.NewRenderer(web.RendererConfig{BasePath: base, Pages: pages, Strings: English})
	if err != nil {
		return nil, err
	}
	if cfg.Service == nil || cfg.Sessions == nil {
		return nil, errors.New("portal: a service and sessions are required")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Email != nil {
		if cfg.Email.Mailer == nil || cfg.Email.PublicURL == "" {
			return nil, errors.New("portal: the e-mail sign-in needs a mailer and the portal's public URL")
		}
		e := *cfg.Email
		emailLimits(&e)
		cfg.Email = &e
	}
	if cfg.SignInLimit == nil {
		cfg.SignInLimit = httpapi.NewLimiter(upstreams.Rate{Calls: 20, Period: 10 * time.Minute})
	}
	return &Portal{cfg: cfg, rd: rd, base: base, log: log, sending: make(chan struct{}, mailers)}, nil
}

// LicenseURL is the path of a licence's page (the 409's portal_url).
func (p *Portal) LicenseURL(licenseID string) string { return p.rd.Path("licenses", licenseID) }

// ServeHTTP routes under the base path.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	web.SetSecurityHeaders(w.Header())
	if r.URL.Path == p.rd.CSSPath() {
		p.rd.ServeCSS(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, p.base)
	if !ok || rest != "" && rest[0] != '/' { // /accountx is not under /account
		p.notFound(w)
		return
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" || rest == "/":
		p.home(w, r)
	case len(segs) == 2 && segs[0] == "auth" && segs[1] == "envato":
		p.beginEnvato(w, r)
	case len(segs) == 3 && segs[0] == "auth" && segs[1] == "envato" && segs[2] == "callback":
		p.envatoCallback(w, r)
	case len(segs) == 2 && segs[0] == "auth" && segs[1] == "email":
		p.requestLink(w, r)
	case len(segs) == 3 && segs[0] == "auth" && segs[1] == "email":
		p.redeemLink(w, r, segs[2])
	case len(segs) == 2 && segs[0] == "licenses":
		p.license(w, r, segs[1])
	case len(segs) == 3 && segs[0] == "licenses" && segs[2] == "refresh":
		p.refresh(w, r, segs[1])
	case len(segs) == 5 && segs[0] == "licenses" && segs[2] == "installations" && segs[4] == "deactivate":
		p.onInstallation(w, r, segs[1], segs[3], deactivateAction)
	case len(segs) == 5 && segs[0] == "licenses" && segs[2] == "installations" && segs[4] == "staging":
		p.onInstallation(w, r, segs[1], segs[3], stagingAction)
	case len(segs) == 1 && segs[0] == "data.json":
		p.download(w, r)
	case len(segs) == 1 && segs[0] == "signout":
		p.signOut(w, r)
	default:
		p.notFound(w)
	}
}

func (p *Portal) notFound(w http.ResponseWriter) {
	if err := p.rd.NotFound(w); err != nil {
		p.log.Error("rendering a page", zap.Error(err))
	}
}

// render renders a page, logging a template error (the buyer gets a plain
// 500 page).
func (p *Portal) render(w http.ResponseWriter, status int, page string, pg web.Page) {
	if err := p.rd.Render(w, status, page, pg); err != nil {
		p.log.Error("rendering a page", zap.String("page", page), zap.Error(err))
	}
}

// Package console is the author console (SPEC section 13): the review
// queue that manual mode fills, search, a licence's page with its
// evidence and timeline, webhook deliveries and installed versions, and
// the admin API's levers for a person. Pages are server-rendered with the
// web kit and work without JavaScript.
//
// The console authenticates no one itself: it sits behind a Caddy
// authentication handler (basic_auth, forward_auth, ...) and trusts the
// user id that handler proved, and nothing else. A request without one is
// refused. Every action goes through the gateway operation the admin API
// uses, audited with the console user as the actor, behind a CSRF token
// bound to that user's console session.
package console

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/web"
)

//go:embed templates/*.html
var templatesFS embed.FS

// DefaultBasePath is where the console lives unless configured.
const DefaultBasePath = "/console"

// CookieName is the console session's cookie: it holds only which user
// the CSRF tokens are bound to, never who may do what (that is the
// authentication handler's word on each request).
const CookieName = "__Host-licensegate_console"

// Config is what a Console is built from.
type Config struct {
	// BasePath is the console's path prefix. Default DefaultBasePath.
	BasePath string
	Service  *gateway.Service
	Master   *secret.Master
	// User is the authenticated user of a request ("" when none): in
	// Caddy, {http.auth.user.id}.
	User func(*http.Request) string
	// ReadOnly users see everything and change nothing.
	ReadOnly []string
	Logger   *zap.Logger
}

// Console is the console's http.Handler.
type Console struct {
	cfg      Config
	rd       *web.Renderer
	base     string
	sessions *web.Sessions
	log      *zap.Logger
}

// New builds the console, parsing its pages (an error here is a bug or a
// bad base path, caught at provision).
func New(cfg Config) (*Console, error) {
	if cfg.Service == nil || cfg.Master == nil || cfg.User == nil {
		return nil, errors.New("console: a service, a master secret and a user source are required")
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	base := strings.TrimSuffix(cfg.BasePath, "/")
	pages, err := fs.Sub(templatesFS, "templates")
	if err != nil {
		return nil, err
	}
	rd, err := web.NewRenderer(web.RendererConfig{BasePath: base, Pages: pages, Strings: English})
	if err != nil {
		return nil, err
	}
	// The console's address is the author's own; on plain-HTTP localhost
	// (a developer's machine, the tests) its cookie drops the __Host-
	// prefix browsers refuse there.
	sessions, err := web.NewSessions(web.SessionsConfig{Master: cfg.Master, CookieName: CookieName, LocalDevelopment: true})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Console{cfg: cfg, rd: rd, base: base, sessions: sessions, log: log}, nil
}

// request is one authenticated request: who, whether they may change
// anything, and the console session their forms' CSRF token is bound to.
type request struct {
	user     string
	readOnly bool
	sess     web.Session
}

// ServeHTTP refuses a request without an authenticated user, then routes
// under the base path.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	web.SetSecurityHeaders(w.Header())
	rest, ok := strings.CutPrefix(r.URL.Path, c.base)
	if !ok || rest != "" && rest[0] != '/' { // /consolex is not under /console
		c.notFound(w)
		return
	}
	user := c.cfg.User(r)
	if user == "" {
		c.log.Error("console request without an authenticated user refused: put basic_auth (or another authentication handler that sets {http.auth.user.id}) before license_console",
			zap.String("path", r.URL.Path))
		c.forbidden(w)
		return
	}
	if r.URL.Path == c.rd.CSSPath() {
		c.rd.ServeCSS(w, r)
		return
	}
	req, ok := c.session(w, r, user)
	if !ok {
		return
	}
	c.route(w, r, req, strings.Split(strings.Trim(rest, "/"), "/"))
}

// route dispatches a page (GET) or an action (POST).
func (c *Console) route(w http.ResponseWriter, r *http.Request, req request, segs []string) {
	switch {
	case len(segs) == 1 && segs[0] == "":
		c.overview(w, r, req)
	case len(segs) == 1 && segs[0] == "queue":
		c.queue(w, r, req)
	case len(segs) == 1 && segs[0] == "search":
		c.search(w, r, req)
	case len(segs) == 2 && segs[0] == "licenses":
		c.license(w, r, req, segs[1])
	case len(segs) == 3 && segs[0] == "licenses":
		c.licenseAction(w, r, req, segs[1], segs[2])
	case len(segs) == 3 && segs[0] == "installations" && segs[2] == "deactivate":
		c.deactivate(w, r, req, segs[1])
	case len(segs) == 1 && segs[0] == "deliveries":
		c.deliveries(w, r, req)
	case len(segs) == 3 && segs[0] == "deliveries" && segs[2] == "retry":
		c.retry(w, r, req, segs[1])
	case len(segs) == 1 && segs[0] == "versions":
		c.versions(w, r, req)
	default:
		c.notFound(w)
	}
}

// session returns the request's console session, starting one for a page
// when it has none or one of another user (a shared browser after a new
// sign-in): its id binds the CSRF tokens of the forms the page shows. A
// form posted without the user's session is refused: its token cannot be
// this user's.
func (c *Console) session(w http.ResponseWriter, r *http.Request, user string) (request, bool) {
	req := request{user: user, readOnly: slices.Contains(c.cfg.ReadOnly, user)}
	sess, ok := c.sessions.Read(r)
	if ok && sess.Identity == user {
		req.sess = sess
		return req, true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.log.Warn("console form refused: no console session for this user", zap.String("user", user), zap.String("path", r.URL.Path))
		c.forbidden(w)
		return req, false
	}
	sess, err := c.sessions.Start(w, r, user, nil)
	if err != nil {
		c.log.Error("starting a console session", zap.Error(err))
		c.rd.Error(w, http.StatusInternalServerError, web.ErrorPage{Title: c.rd.T("error.internal.title"), Message: c.rd.T("error.internal.message")}) //nolint:errcheck // logged above
		return req, false
	}
	req.sess = sess
	return req, true
}

// verify checks a form: a user who may change things, and the CSRF token
// of their session. Refused, it has answered 403 and changed nothing.
func (c *Console) verify(w http.ResponseWriter, r *http.Request, req request, changes bool) bool {
	if changes && req.readOnly {
		c.log.Warn("console action refused: read-only user", zap.String("user", req.user), zap.String("path", r.URL.Path))
		c.forbidden(w)
		return false
	}
	sess, err := c.sessions.Verify(r)
	if err != nil || sess.ID != req.sess.ID {
		c.log.Warn("console form refused", zap.String("user", req.user), zap.String("path", r.URL.Path), zap.Error(err))
		c.forbidden(w)
		return false
	}
	return true
}

func (c *Console) notFound(w http.ResponseWriter) {
	if err := c.rd.NotFound(w); err != nil {
		c.log.Error("rendering a page", zap.Error(err))
	}
}

// badRequest is the 400 page of a form no page of the console sends.
func (c *Console) badRequest(w http.ResponseWriter) {
	if err := c.rd.Error(w, http.StatusBadRequest, web.ErrorPage{Title: c.rd.T("error.bad_request.title"),
		Message: c.rd.T("error.bad_request.message"), RetryURL: c.base + "/"}); err != nil {
		c.log.Error("rendering a page", zap.Error(err))
	}
}

func (c *Console) forbidden(w http.ResponseWriter) {
	if err := c.rd.Forbidden(w, c.base+"/"); err != nil {
		c.log.Error("rendering a page", zap.Error(err))
	}
}

// render renders a page in the console's frame, logging a template error
// (the author gets a plain 500 page).
func (c *Console) render(w http.ResponseWriter, r *http.Request, req request, page string, data any) {
	pg := web.Page{SignedInAs: req.user, CSRFToken: c.sessions.CSRFToken(req.sess), Data: data, Nav: c.nav(page)}
	if f, ok := c.sessions.PopFlash(w, r); ok && f.Owner == req.sess.ID {
		pg.Flash = &f // another user's, in a shared browser, is dropped
	}
	if err := c.rd.Render(w, http.StatusOK, page, pg); err != nil {
		c.log.Error("rendering a page", zap.String("page", page), zap.Error(err))
	}
}

// nav is the console's sections, the current one marked.
func (c *Console) nav(page string) []web.NavLink {
	sections := [...]struct{ page, label, href string }{
		{"overview", "nav.overview", c.base + "/"},
		{"queue", "nav.queue", c.rd.Path("queue")},
		{"search", "nav.search", c.rd.Path("search")},
		{"deliveries", "nav.deliveries", c.rd.Path("deliveries")},
		{"versions", "nav.versions", c.rd.Path("versions")},
	}
	out := make([]web.NavLink, len(sections))
	for i, s := range sections {
		out[i] = web.NavLink{Label: c.rd.T(s.label), Href: s.href, Current: s.page == page}
	}
	return out
}

// unavailable is the 503 page of a store that did not answer: nothing
// was changed, and the author may try again.
func (c *Console) unavailable(w http.ResponseWriter, retry string, err error) {
	c.log.Warn("console page unavailable", zap.Error(err))
	if rerr := c.rd.Unavailable(w, retry, retryAfter); rerr != nil {
		c.log.Error("rendering a page", zap.Error(rerr))
	}
}

// retryAfter is the console's Retry-After on a 503: a person retries by
// hand.
const retryAfter = 5 * time.Second

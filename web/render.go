package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed templates/*.html static/site.css
var kitFS embed.FS

// ErrorPageName is the kit's own error page, rendered by Renderer.Error.
const ErrorPageName = "error"

// RendererConfig configures a Renderer.
type RendererConfig struct {
	// BasePath is the surface's path prefix (e.g. "/account"); the CSS and
	// the home link are under it. Default "" (the site root).
	BasePath string
	// SiteName is shown in the header and every title. Default
	// English["site.name"].
	SiteName string
	// Pages holds the surface's page templates, one "<name>.html" file per
	// page at its root, each defining "title" and "content" (see
	// templates/error.html). Optional. A file whose name starts with "_"
	// is no page: it holds templates every page may use (a form two
	// pages show).
	Pages fs.FS
	// Strings adds to (or overrides) English.
	Strings map[string]string
}

// Renderer renders pages in the kit's layout and serves its CSS. It is
// built once and safe for concurrent use.
type Renderer struct {
	pages   map[string]*template.Template
	strings map[string]string
	site    string
	base    string
	css     []byte
	cssPath string
	cssETag string
}

// Page is what a handler gives Render: the layout's parts plus the page's
// own Data.
type Page struct {
	// SignedInAs is shown in the header when set (e.g. "alice").
	SignedInAs string
	// Flash is shown above the page's heading when set (from PopFlash).
	Flash *Flash
	// CSRFToken goes in every form through {{template "csrf" $}}.
	CSRFToken string
	// Data is the page's own data, as {{.Data}}.
	Data any
	// Nav is the surface's navigation, shown under the header when set
	// (the console's sections); the Current one is marked for assistive
	// technology with aria-current.
	Nav []NavLink
}

// NavLink is one entry of Page.Nav.
type NavLink struct {
	Label, Href string
	Current     bool
}

// view is what the templates see: the Page plus what the Renderer knows.
type view struct {
	Page
	Site      string
	Home      string
	CSS       string
	CSRFField string
}

// ErrorPage is the data of the error page.
type ErrorPage struct {
	Title, Message string
	// RetryURL, when set, is offered as a "Try again" link.
	RetryURL string
}

// NewRenderer parses the kit's layout and error page and cfg.Pages, and
// hashes the CSS. A template that does not parse is an error here, at
// provision, not on a buyer's request.
func NewRenderer(cfg RendererConfig) (*Renderer, error) {
	rd := &Renderer{
		strings: maps.Clone(English),
		base:    strings.TrimSuffix(cfg.BasePath, "/"),
		pages:   map[string]*template.Template{},
	}
	if rd.base != "" && !strings.HasPrefix(rd.base, "/") {
		return nil, fmt.Errorf("renderer: base path %q must start with /", cfg.BasePath)
	}
	maps.Copy(rd.strings, cfg.Strings)
	rd.site = cfg.SiteName
	if rd.site == "" {
		rd.site = rd.strings["site.name"]
	}
	if err := rd.loadCSS(); err != nil {
		return nil, err
	}
	layout, err := template.New("layout").Funcs(template.FuncMap{"t": rd.lookup, "path": rd.path}).
		ParseFS(kitFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("renderer: parsing layout: %w", err)
	}
	if err := rd.addPage(layout, kitFS, "templates/"+ErrorPageName+".html"); err != nil {
		return nil, err
	}
	if cfg.Pages != nil {
		if layout, err = withPartials(layout, cfg.Pages); err != nil {
			return nil, err
		}
		files, err := fs.Glob(cfg.Pages, "*.html")
		if err != nil {
			return nil, fmt.Errorf("renderer: listing pages: %w", err)
		}
		for _, f := range files {
			if strings.HasPrefix(f, "_") {
				continue
			}
			if err := rd.addPage(layout, cfg.Pages, f); err != nil {
				return nil, err
			}
		}
	}
	return rd, nil
}

// withPartials adds the surface's shared templates ("_*.html") to the
// layout every page is cloned from.
func withPartials(layout *template.Template, fsys fs.FS) (*template.Template, error) {
	partials, err := fs.Glob(fsys, "_*.html")
	if err != nil || len(partials) == 0 {
		return layout, err
	}
	if layout, err = layout.ParseFS(fsys, partials...); err != nil {
		return nil, fmt.Errorf("renderer: parsing shared templates: %w", err)
	}
	return layout, nil
}

// addPage parses one page file into its own copy of the layout, so every
// page may define "title" and "content" without clashing.
func (rd *Renderer) addPage(layout *template.Template, fsys fs.FS, file string) error {
	name := strings.TrimSuffix(path.Base(file), ".html")
	t, err := layout.Clone()
	if err == nil {
		t, err = t.ParseFS(fsys, file)
	}
	if err != nil {
		return fmt.Errorf("renderer: parsing page %s: %w", name, err)
	}
	for _, part := range []string{"title", "content"} {
		if t.Lookup(part) == nil {
			return fmt.Errorf("renderer: page %s defines no %q", name, part)
		}
	}
	rd.pages[name] = t
	return nil
}

// loadCSS reads the embedded CSS and names it by a hash of its content,
// so it can be cached for a year and a new build still reaches every
// browser at once.
func (rd *Renderer) loadCSS() error {
	css, err := kitFS.ReadFile("static/site.css")
	if err != nil {
		return fmt.Errorf("renderer: reading css: %w", err)
	}
	sum := sha256.Sum256(css)
	hash := hex.EncodeToString(sum[:8])
	rd.css = css
	rd.cssPath = rd.base + "/static/site." + hash + ".css"
	rd.cssETag = `"` + hash + `"`
	return nil
}

// T returns the string for key, or the key itself in brackets when the
// table has none (visible in tests and review, never a blank).
func (rd *Renderer) T(key string) string {
	if s, ok := rd.strings[key]; ok {
		return s
	}
	return "[" + key + "]"
}

// lookup is T for templates: a missing key fails the render.
func (rd *Renderer) lookup(key string) (string, error) {
	s, ok := rd.strings[key]
	if !ok {
		return "", fmt.Errorf("no string %q", key)
	}
	return s, nil
}

// path is the link to a page of the surface: the base path and segments,
// each path-escaped, so an id holding "/", ".." or "?" stays one segment:
// {{path "licenses" .ID}} is "/account/licenses/<id>". html/template then
// escapes the whole for its attribute.
func (rd *Renderer) path(segments ...string) string {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		escaped[i] = url.PathEscape(s)
	}
	return rd.base + "/" + strings.Join(escaped, "/")
}

// Path is the template's path for handlers (redirect targets, retry
// links): Path("licenses", id).
func (rd *Renderer) Path(segments ...string) string { return rd.path(segments...) }

// Render writes page with status, the security headers and an HTML
// content type. It renders into a buffer first, so a template error is a
// plain 500 rather than half a page; the error is returned for the
// caller's log (it names the page and the template, never the data).
func (rd *Renderer) Render(w http.ResponseWriter, status int, page string, p Page) error {
	t, ok := rd.pages[page]
	if !ok {
		rd.internalError(w)
		return fmt.Errorf("rendering %s: no such page", page)
	}
	var buf bytes.Buffer
	v := view{Page: p, Site: rd.site, Home: rd.base + "/", CSS: rd.cssPath, CSRFField: CSRFField}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		rd.internalError(w)
		return fmt.Errorf("rendering %s: %w", page, err)
	}
	h := w.Header()
	SetSecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
	return nil
}

// internalError is the last resort when a page cannot be rendered.
func (rd *Renderer) internalError(w http.ResponseWriter) {
	SetSecurityHeaders(w.Header())
	http.Error(w, rd.T("error.internal.title"), http.StatusInternalServerError)
}

// Error renders the error page with status.
func (rd *Renderer) Error(w http.ResponseWriter, status int, e ErrorPage) error {
	return rd.Render(w, status, ErrorPageName, Page{Data: e})
}

// Forbidden is the 403 page for a refused form (no session, a missing or
// wrong CSRF token, a cross-origin post): nothing was changed, and the
// person is sent back to retryURL (a page of this surface) to try again.
func (rd *Renderer) Forbidden(w http.ResponseWriter, retryURL string) error {
	return rd.Error(w, http.StatusForbidden, ErrorPage{
		Title: rd.T("error.forbidden.title"), Message: rd.T("error.forbidden.message"), RetryURL: retryURL,
	})
}

// Unavailable is the 503 "try again shortly" page for an outage of a
// service a page needs (the marketplace during sign-in): never a wrong
// answer such as "you have no purchases".
func (rd *Renderer) Unavailable(w http.ResponseWriter, retryURL string, retryAfter time.Duration) error {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int((retryAfter+time.Second-1)/time.Second)))
	}
	return rd.Error(w, http.StatusServiceUnavailable, ErrorPage{
		Title: rd.T("error.unavailable.title"), Message: rd.T("error.unavailable.message"), RetryURL: retryURL,
	})
}

// NotFound is the 404 page.
func (rd *Renderer) NotFound(w http.ResponseWriter) error {
	return rd.Error(w, http.StatusNotFound, ErrorPage{
		Title: rd.T("error.not_found.title"), Message: rd.T("error.not_found.message"), RetryURL: rd.base + "/",
	})
}

// CSSPath is the URL path of the stylesheet, content hash included; route
// it to ServeCSS.
func (rd *Renderer) CSSPath() string { return rd.cssPath }

// ServeCSS serves the stylesheet at CSSPath (and 404s anything else) with
// a year's immutable caching: its URL changes whenever its content does.
func (rd *Renderer) ServeCSS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	SetSecurityHeaders(h)
	if r.URL.Path != rd.cssPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", rd.cssETag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rd.css))
}

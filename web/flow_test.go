package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
)

// exampleSurface is how a portal or console handler uses the kit: read the
// session, render with its CSRF token and flash; on POST verify, change,
// flash, redirect (post/redirect/get); refuse with the 403 page.
type exampleSurface struct {
	s       *Sessions
	rd      *Renderer
	changes int
}

func (e *exampleSurface) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == e.rd.CSSPath() {
		e.rd.ServeCSS(w, r)
		return
	}
	if r.Method == http.MethodPost {
		sess, err := e.s.Verify(r)
		if err != nil {
			_ = e.rd.Forbidden(w, e.rd.Path())
			return
		}
		e.changes++
		_ = e.s.SetFlash(w, r, Flash{Text: "Label saved for " + sess.Identity + "."})
		http.Redirect(w, r, e.rd.Path(), http.StatusSeeOther)
		return
	}
	sess, ok := e.s.Read(r)
	if !ok {
		_ = e.rd.Forbidden(w, e.rd.Path())
		return
	}
	p := Page{SignedInAs: sess.Identity, CSRFToken: e.s.CSRFToken(sess), Data: exampleData{ID: "i_1", Name: "Shop", Domain: "shop.example.com"}}
	if f, ok := e.s.PopFlash(w, r); ok {
		p.Flash = &f
	}
	_ = e.rd.Render(w, http.StatusOK, "example", p)
}

// browser keeps cookies the way a browser would for one site.
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
}

func (b *browser) do(method, target string, form url.Values, header map[string]string) *httptest.ResponseRecorder {
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	SecurityHeaders(b.h).ServeHTTP(rec, r)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return rec
}

func TestPostRedirectGetFlow(t *testing.T) {
	const base = "https://licenses.example.com/account/"
	s := testSessions(t, testMaster(t, 0), newClock())
	rd, err := NewRenderer(RendererConfig{BasePath: "/account", Pages: os.DirFS("testdata/pages")})
	if err != nil {
		t.Fatal(err)
	}
	surface := &exampleSurface{s: s, rd: rd}
	b := &browser{t: t, h: surface, cookies: map[string]*http.Cookie{}}

	// Signed out: the page is refused.
	if rec := b.do(http.MethodGet, base, nil, nil); rec.Code != http.StatusForbidden {
		t.Fatalf("signed-out GET = %d", rec.Code)
	}
	// Sign in (what a callback handler does).
	rec := httptest.NewRecorder()
	sess, err := s.Start(rec, httptest.NewRequest(http.MethodGet, base, nil), "envato:alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		b.cookies[c.Name] = c
	}
	page := b.do(http.MethodGet, base, nil, nil)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `name="csrf_token" value="`+s.CSRFToken(sess)+`"`) {
		t.Fatalf("GET = %d without the form's token", page.Code)
	}
	assertSecurityHeaders(t, page.Header())

	refusals := []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"no token", url.Values{"label": {"x"}}, nil},
		{"forged token", url.Values{"label": {"x"}, CSRFField: {strings.Repeat("0", 64)}}, nil},
		{"cross-site with the right token", url.Values{"label": {"x"}, CSRFField: {s.CSRFToken(sess)}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tt := range refusals {
		rec := b.do(http.MethodPost, base, tt.form, tt.header)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "This form could not be accepted") {
			t.Errorf("%s: POST = %d", tt.name, rec.Code)
		}
		assertSecurityHeaders(t, rec.Header())
	}
	if surface.changes != 0 {
		t.Fatalf("%d changes from refused posts", surface.changes)
	}

	post := b.do(http.MethodPost, base, url.Values{"label": {"x"}, CSRFField: {s.CSRFToken(sess)}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if post.Code != http.StatusSeeOther || surface.changes != 1 {
		t.Fatalf("POST = %d, changes %d", post.Code, surface.changes)
	}
	assertSecurityHeaders(t, post.Header())
	after := b.do(http.MethodGet, base, nil, nil)
	if !strings.Contains(after.Body.String(), "Label saved for envato:alice.") {
		t.Error("the flash is not shown after the redirect")
	}
	again := b.do(http.MethodGet, base, nil, nil)
	if strings.Contains(again.Body.String(), "Label saved") {
		t.Error("the flash is shown twice")
	}
	css := b.do(http.MethodGet, "https://licenses.example.com"+rd.CSSPath(), nil, nil)
	if css.Code != http.StatusOK || css.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("CSS through the middleware = %d, Cache-Control %q", css.Code, css.Header().Get("Cache-Control"))
	}
}

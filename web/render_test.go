package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// exampleData is the example page's data: user-controlled strings.
type exampleData struct{ ID, Name, Domain string }

// testRenderer renders testdata/pages under /account.
func testRenderer(t *testing.T) *Renderer {
	t.Helper()
	rd, err := NewRenderer(RendererConfig{BasePath: "/account/", SiteName: "Acme <Licences>", Pages: os.DirFS("testdata/pages")})
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// inlineCode finds anything the CSP would block or that would need
// JavaScript: script elements, style elements or attributes, event
// handlers, javascript: URLs. Attributes are matched inside tags only
// (a literal "<" starts a tag; escaped text holds "&lt;").
var inlineCode = regexp.MustCompile(`(?i)<script|<style|<[^>]*\s(style|on[a-z]+)\s*=|<[^>]*=\s*"?\s*javascript:`)

// TestExamplePage renders a signed-in page with a form the way a portal
// handler does, from the session to the HTML.
func TestExamplePage(t *testing.T) {
	s := testSessions(t, testMaster(t, 0), newClock())
	rd := testRenderer(t)
	sess, err := s.Start(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "https://h/account/", nil), "envato:alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	hostile := `<script>alert("x")</script>`
	rec := httptest.NewRecorder()
	err = rd.Render(rec, http.StatusOK, "example", Page{
		SignedInAs: `alice"><img src=x onerror=alert(1)>`,
		Flash:      &Flash{Kind: FlashInfo, Text: "Saved " + hostile},
		CSRFToken:  s.CSRFToken(sess),
		Data:       exampleData{ID: `i_1"/../x`, Name: hostile, Domain: "shop.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	html := string(body)

	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	assertSecurityHeaders(t, res.Header)
	for _, want := range []string{
		`<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<a class="skip" href="#main">Skip to main content</a>`,
		`<main id="main"`,
		`<link rel="stylesheet" href="` + rd.CSSPath() + `">`,
		`<input type="hidden" name="csrf_token" value="` + s.CSRFToken(sess) + `">`,
		`<label for="label">Label</label>`,
		`<h1>Rename &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</h1>`,
		`Acme &lt;Licences&gt;`,
		`role="status"`,
		`<form method="post" action="/account/installations/i_1%22%2F..%2Fx/label">`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if m := inlineCode.FindString(html); m != "" {
		t.Errorf("page has inline code or style %q:\n%s", m, html)
	}
	if strings.Contains(html, "<img") {
		t.Error("user data became markup")
	}
}

func TestInlineCodeDetector(t *testing.T) {
	tests := []struct {
		html string
		want bool
	}{
		{`<p>&lt;script&gt; onerror=x style=y javascript:z</p>`, false},
		{`<script src="/a.js"></script>`, true},
		{`<style>p{}</style>`, true},
		{`<p style="color:red">`, true},
		{`<img src=x onerror=alert(1)>`, true},
		{`<a href="javascript:alert(1)">`, true},
	}
	for _, tt := range tests {
		if got := inlineCode.MatchString(tt.html); got != tt.want {
			t.Errorf("%s: matched %v, want %v", tt.html, got, tt.want)
		}
	}
}

func TestPath(t *testing.T) {
	rd := testRenderer(t)
	tests := []struct {
		segments []string
		want     string
	}{
		{nil, "/account/"},
		{[]string{"licenses", "lic_1"}, "/account/licenses/lic_1"},
		{[]string{"licenses", "../../admin?x=1"}, "/account/licenses/..%2F..%2Fadmin%3Fx=1"},
	}
	for _, tt := range tests {
		if got := rd.Path(tt.segments...); got != tt.want {
			t.Errorf("Path(%q) = %q, want %q", tt.segments, got, tt.want)
		}
	}
}

func TestErrorPages(t *testing.T) {
	rd := testRenderer(t)
	tests := []struct {
		name      string
		render    func(w http.ResponseWriter) error
		status    int
		want      []string
		wantRetry string
	}{
		{"forbidden", func(w http.ResponseWriter) error { return rd.Forbidden(w, "/account/licenses/lic_1") },
			http.StatusForbidden, []string{"This form could not be accepted"}, `href="/account/licenses/lic_1"`},
		{"unavailable", func(w http.ResponseWriter) error { return rd.Unavailable(w, "/account/sign-in", 0) },
			http.StatusServiceUnavailable, []string{"Try again shortly", "Nothing was changed."}, `href="/account/sign-in"`},
		{"not found", func(w http.ResponseWriter) error { return rd.NotFound(w) },
			http.StatusNotFound, []string{"Page not found"}, `href="/account/"`},
		{"custom without retry", func(w http.ResponseWriter) error {
			return rd.Error(w, http.StatusBadRequest, ErrorPage{Title: "Bad <input>", Message: "Check it."})
		}, http.StatusBadRequest, []string{"<h1>Bad &lt;input&gt;</h1>", "<p>Check it.</p>"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := tt.render(rec); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			assertSecurityHeaders(t, rec.Header())
			html := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("page lacks %s:\n%s", w, html)
				}
			}
			hasRetry := strings.Contains(html, "Try again</a>")
			if hasRetry != (tt.wantRetry != "") || (tt.wantRetry != "" && !strings.Contains(html, tt.wantRetry)) {
				t.Errorf("retry link: want %q in:\n%s", tt.wantRetry, html)
			}
		})
	}
}

func TestUnavailableRetryAfter(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := testRenderer(t).Unavailable(rec, "", 1500*1e6); err != nil {
		t.Fatal(err)
	}
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (never rounded down)", got)
	}
}

func TestRenderFailures(t *testing.T) {
	rd, err := NewRenderer(RendererConfig{Pages: fstest.MapFS{
		"missing-string.html": {Data: []byte(`{{define "title"}}x{{end}}{{define "content"}}{{t "no.such.key"}}{{end}}`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"missing-string", "no-such-page"} {
		t.Run(page, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := rd.Render(rec, http.StatusOK, page, Page{Data: "secret-data"}); err == nil {
				t.Fatal("want an error")
			} else if strings.Contains(err.Error(), "secret-data") {
				t.Errorf("error shows the data: %v", err)
			}
			if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "<html") {
				t.Errorf("status %d, body %q: want a plain 500, no half page", rec.Code, rec.Body.String())
			}
			assertSecurityHeaders(t, rec.Header())
		})
	}
}

func TestNewRendererRefusesBadPages(t *testing.T) {
	tests := []struct {
		name string
		cfg  RendererConfig
	}{
		{"no content", RendererConfig{Pages: fstest.MapFS{"a.html": {Data: []byte(`{{define "title"}}a{{end}}`)}}}},
		{"no title", RendererConfig{Pages: fstest.MapFS{"a.html": {Data: []byte(`{{define "content"}}a{{end}}`)}}}},
		{"does not parse", RendererConfig{Pages: fstest.MapFS{"a.html": {Data: []byte(`{{define "title"}}`)}}}},
		{"relative base path", RendererConfig{BasePath: "account"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRenderer(tt.cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestServeCSS(t *testing.T) {
	rd := testRenderer(t)
	if !regexp.MustCompile(`^/account/static/site\.[0-9a-f]{16}\.css$`).MatchString(rd.CSSPath()) {
		t.Fatalf("CSSPath = %q", rd.CSSPath())
	}
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
	}{
		{"css", http.MethodGet, rd.CSSPath(), nil, http.StatusOK},
		{"head", http.MethodHead, rd.CSSPath(), nil, http.StatusOK},
		{"revalidation", http.MethodGet, rd.CSSPath(), map[string]string{"If-None-Match": rd.cssETag}, http.StatusNotModified},
		{"old hash", http.MethodGet, "/account/static/site.0000000000000000.css", nil, http.StatusNotFound},
		{"post", http.MethodPost, rd.CSSPath(), nil, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			rd.ServeCSS(rec, r)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if rec.Header().Get("Content-Security-Policy") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("security headers missing")
			}
			if tt.status != http.StatusOK {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != "text/css; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control = %q", got)
			}
			if tt.method == http.MethodGet && !strings.Contains(rec.Body.String(), ".skip") {
				t.Error("not the stylesheet")
			}
		})
	}
}

func TestStringsUsedByKitTemplatesExist(t *testing.T) {
	// A render fails on a missing key, but only on the branch that uses
	// it; this reads every {{t "key"}} of the kit's templates.
	used := regexp.MustCompile(`\{\{-?\s*t "([^"]+)"`)
	for _, f := range []string{"templates/layout.html", "templates/error.html"} {
		b, err := kitFS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if _, ok := English[m[1]]; !ok {
				t.Errorf("%s uses string %q, not in English", f, m[1])
			}
		}
	}
}

package web

import (
	"net/http"
	"strings"
)

// ContentSecurityPolicy allows nothing but the page's own origin: the pages
// need no JavaScript and no inline style, so any injected markup that slips
// past html/template's escaping still cannot run or restyle anything. Forms
// post only to this origin (form-action also covers the redirects a form
// submission follows in browsers that enforce CSP 3, so a sign-in that
// leaves for an OAuth provider must start from a link, not a form), no one
// may frame a page (clickjacking of the deactivate button), and a <base>
// tag cannot redirect relative links.
const ContentSecurityPolicy = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders are set on every page; Cache-Control no-store keeps a
// signed-in page out of shared and back/forward caches on a shared
// computer. The CSS handler overrides Cache-Control for its immutable file.
var securityHeaders = [...][2]string{
	{"Content-Security-Policy", ContentSecurityPolicy},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cache-Control", "no-store"},
	{"X-Content-Type-Options", "nosniff"},
}

// SetSecurityHeaders sets the headers every page carries, replacing any
// value already there.
func SetSecurityHeaders(h http.Header) {
	for _, kv := range securityHeaders {
		h.Set(kv[0], kv[1])
	}
}

// SecurityHeaders wraps next so that every answer, including redirects
// and errors next writes itself, carries the security headers. They are
// set before next runs, so next may still override one (the CSS handler
// does for Cache-Control).
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// Methods answers 405 with Allow unless r's method is one of allowed (GET
// allows HEAD), and says whether the handler may go on.
func Methods(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m || m == http.MethodGet && r.Method == http.MethodHead {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

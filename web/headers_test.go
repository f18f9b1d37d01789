package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// assertSecurityHeaders fails t unless h carries every page header.
func assertSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
	}
	for name, value := range want {
		if got := h.Get(name); got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
	}{
		{"page", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }, http.StatusOK},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/account", http.StatusSeeOther)
		}, http.StatusSeeOther},
		{"plain error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusNotFound)
		}, http.StatusNotFound},
		{"handler tries a weaker cache header first", func(w http.ResponseWriter, r *http.Request) {
			// A value set before the middleware ran is replaced, not kept.
			w.WriteHeader(http.StatusOK)
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Cache-Control", "public")
			SecurityHeaders(tt.handler).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/account", nil))
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			assertSecurityHeaders(t, rec.Header())
		})
	}
}

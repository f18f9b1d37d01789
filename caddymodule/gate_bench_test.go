package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkGateServeHTTP is the gate handler's steady-state request: the
// token verified before, the licence's status cached. The allocations are
// the headers and placeholders it sets; admission itself allocates nothing.
func BenchmarkGateServeHTTP(b *testing.B) {
	for name, conn := range map[string][]string{
		"no Connection":         nil,
		"Connection keep-alive": {"keep-alive"},
	} {
		b.Run(name, func(b *testing.B) {
			f := newGateFixture(b)
			r, _ := f.request(nil)
			if conn != nil {
				r.Header["Connection"] = conn
			}
			benchServe(b, f, r)
		})
	}
}

// benchServe serves r through f's gate b.N times, and returns the
// response recorder.
func benchServe(b *testing.B, f *gateFixture, r *http.Request) *httptest.ResponseRecorder {
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Header["Authorization"] = f.bearer
		if err := f.gate.ServeHTTP(w, r, next); err != nil || r.Header.Get("X-License-Product") != "p" {
			b.Fatal("not admitted", err)
		}
	}
	b.StopTimer()
	return w
}

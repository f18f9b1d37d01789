package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/gateway"
)

// BenchmarkGateServeHTTP is the gate handler's steady-state request: the
// token verified before, the licence's status cached. The allocations are
// the headers and placeholders it sets; admission itself allocates nothing.
//
// "metrics" is the same request with the OpenTelemetry metrics on (and
// tracing off): issue 13 wants it within 1 µs of the one without.
func BenchmarkGateServeHTTP(b *testing.B) {
	for name, conn := range map[string][]string{
		"no Connection":         nil,
		"Connection keep-alive": {"keep-alive"},
		"metrics":               nil,
	} {
		b.Run(name, func(b *testing.B) {
			var obs []gateway.Observer
			if name == "metrics" {
				m, err := newOtelMetrics()
				if err != nil {
					b.Fatal(err)
				}
				obs = append(obs, m)
			}
			f := newGateFixture(b, obs...)
			r, _ := f.request(nil)
			if conn != nil {
				r.Header["Connection"] = conn
			}
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
		})
	}
}

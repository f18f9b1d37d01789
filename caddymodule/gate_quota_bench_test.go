package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/gateway"
)

// BenchmarkGateServeHTTPPolicy is BenchmarkGateServeHTTP's request
// through a plain gate (last-seen noting included) and through one with a
// require line and a quota, which adds the RateLimit fields.
func BenchmarkGateServeHTTPPolicy(b *testing.B) {
	for _, name := range []string{"plain", "require+quota"} {
		b.Run(name, func(b *testing.B) {
			f := newGateFixture(b)
			if name != "plain" {
				q, _ := gateway.ParseQuota("1000000000000/h")
				f.gate.gate = f.svc.Gate(nil, gateway.WithRequirements(gateway.Requirement{SupportActive: true}), gateway.WithQuota(q))
				f.gate.rlPolicy = map[gateway.Quota]string{q: `"quota";q=1000000000000;w=3600`}
				r, _ := f.request(nil)
				w := httptest.NewRecorder()
				if err := f.gate.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil || w.Header().Get("RateLimit") == "" {
					b.Fatal("no RateLimit field", err)
				}
			}
			benchGate(b, f, nil)
		})
	}
}

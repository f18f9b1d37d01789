package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/telemetry"
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
			benchGate(b, newGateFixture(b), conn)
		})
	}
}

// BenchmarkGateMetrics is BenchmarkGateServeHTTP's request without
// metrics ("off") and with the OpenTelemetry metrics on, tracing off
// ("on"), one after the other in a fixed order so that -count interleaves
// them: issue 13 wants "on" within 1 µs of "off".
func BenchmarkGateMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var obs []gateway.Observer
			if on {
				m, err := telemetry.New()
				if err != nil {
					b.Fatal(err)
				}
				obs = append(obs, m)
			}
			benchGate(b, newGateFixture(b, obs...), nil)
		})
	}
}

// benchGate runs f's admitted request b.N times, with the Connection
// header conn when set.
func benchGate(b *testing.B, f *gateFixture, conn []string) {
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
}

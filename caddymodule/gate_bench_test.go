package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/tokens"
	"github.com/licensegate/licensegate/upstreams"
)

type benchSource struct{}

func (benchSource) Name() string                          { return "test" }
func (benchSource) CanonicalKey(k string) (string, error) { return k, nil }
func (benchSource) Verify(context.Context, upstreams.Request) upstreams.Verdict {
	return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
}

func BenchmarkGateServeHTTP(b *testing.B) {
	st, err := embedded.Open(filepath.Join(b.TempDir(), "lg.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	master, _ := secret.New([]byte("gate-bench-secret-0123456789abcdefghij"))
	ring := tokens.NewRing(st, master, nil)
	if err := ring.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	svc, err := gateway.New(gateway.Config{Store: st, Master: master, Ring: ring, Issuer: tokens.NewIssuer(ring, "iss", time.Hour),
		Sources:  map[string]upstreams.Source{"test": benchSource{}},
		Products: map[string]*gateway.Product{"p": {Name: "p", Sources: []string{"test"}, Rules: policy.Rules{Activations: 1}}}, ProductOrder: []string{"p"}})
	if err != nil {
		b.Fatal(err)
	}
	a, err := svc.Activate(context.Background(), gateway.ActivateRequest{Key: "KEY-1", Domain: "acme.com"})
	if err != nil {
		b.Fatal(err)
	}
	g := &Gate{svc: svc, verifier: svc.NewVerifier(nil), logger: zap.NewNop(), staleFor: defaultStale}
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	auth := []string{"Bearer " + a.AccessToken}
	r := httptest.NewRequest(http.MethodGet, "/convert", nil)
	caddyhttp.NewTestReplacer(r)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Header["Authorization"] = auth
		if err := g.ServeHTTP(w, r, next); err != nil || r.Header.Get("X-License-Product") != "p" {
			b.Fatal("not admitted", err)
		}
	}
}

package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/upstreams"
)

// validate adapts a Caddyfile and provisions it without starting it.
func validate(t *testing.T, caddyfile string) error {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir()) // Caddy's and any default store's data
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// The handlers need the licensegate global option: without it they would
// provision an empty app with a generated secret and no products.
func TestHandlersNeedTheGlobalOption(t *testing.T) {
	for directive, want := range map[string]string{
		"license_exchange": "license_exchange: the licensegate global option is not configured",
		"license_gate":     "license_gate: the licensegate global option is not configured",
	} {
		t.Run(directive, func(t *testing.T) {
			err := validate(t, "{\n\tadmin off\n}\n\n:0 {\n\t"+directive+"\n}\n")
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want %q", err, want)
			}
		})
		t.Run(directive+" with the option", func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "lg.db")
			err := validate(t, "{\n\tadmin off\n\tlicensegate {\n\t\tstorage embedded "+db+"\n\t}\n}\n\n:0 {\n\t"+directive+"\n}\n")
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// newServiceForTest is a gateway service on a fresh embedded store, its key
// ring loaded; cfg gives what else the test needs.
func newServiceForTest(tb testing.TB, cfg gateway.Config) *gateway.Service {
	tb.Helper()
	st, err := embedded.Open(filepath.Join(tb.TempDir(), "lg.db"), time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	cfg.Store = st
	if cfg.Master, err = secret.New([]byte("caddymodule-test-secret-0123456789abcdef")); err != nil {
		tb.Fatal(err)
	}
	svc, err := gateway.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.LoadKeys(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return svc
}

// newTestExchange is an exchange with no products: enough for the
// endpoints that authenticate.
func newTestExchange(t *testing.T) *Exchange {
	t.Helper()
	svc := newServiceForTest(t, gateway.Config{Issuer: "iss"})
	lim := upstreams.Rate{Calls: 1000, Period: time.Minute}
	return &Exchange{svc: svc, logger: zap.NewNop(), requests: newIPLimiter(lim), failures: newIPLimiter(lim)}
}

// The installer endpoints challenge like the gate: a bare Bearer when no
// credential came, error="invalid_token" when one was refused.
func TestExchangeBearerChallenge(t *testing.T) {
	e := newTestExchange(t)
	for _, c := range []struct {
		method, op, auth, body, want string
	}{
		{http.MethodGet, "status", "", "", "Bearer"},
		{http.MethodPost, "deactivate", "", "", "Bearer"},
		{http.MethodPost, "move", "", "domain=new.example.com", "Bearer"},
		{http.MethodGet, "status", "Bearer not-a-token", "", `Bearer error="invalid_token"`},
		{http.MethodPost, "deactivate", "", "refresh_token=rt_nope", `Bearer error="invalid_token"`},
		{http.MethodPost, "move", "Bearer not-a-token", "domain=new.example.com", `Bearer error="invalid_token"`},
	} {
		t.Run(c.op+" "+c.auth+c.body, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "/v1/licenses/"+c.op, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			if err := e.ServeHTTP(rec, req, nil); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != c.want {
				t.Fatalf("%d, WWW-Authenticate %q, want 401 %q: %s", rec.Code, rec.Header().Get("WWW-Authenticate"), c.want, rec.Body)
			}
		})
	}
}

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
	"github.com/licensegate/licensegate/httpapi"
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
	return testExchange(svc, zap.NewNop(), lim, lim)
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

// The token endpoint's refusals carry RFC 6749's error member beside the
// code, so OAuth2 clients classify them.
func TestTokenErrorsCarryOAuthError(t *testing.T) {
	e := newTestExchange(t)
	for _, c := range []struct {
		name, ctype, body string
		status            int
		code, oauth       string
	}{
		{"unknown refresh token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=rt_nope", http.StatusUnauthorized, gateway.CodeInvalidToken, "invalid_grant"},
		{"well-formed unknown token", "application/x-www-form-urlencoded",
			"grant_type=refresh_token&refresh_token=rt_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized, gateway.CodeInvalidToken, "invalid_grant"},
		{"other grant type", "application/x-www-form-urlencoded", "grant_type=password&username=a", http.StatusUnprocessableEntity, gateway.CodeValidationFailed, "unsupported_grant_type"},
		{"no grant type", "application/x-www-form-urlencoded", "refresh_token=rt_nope", http.StatusUnprocessableEntity, gateway.CodeValidationFailed, "invalid_request"},
		{"no refresh token", "application/json", `{"grant_type":"refresh_token"}`, http.StatusUnprocessableEntity, gateway.CodeValidationFailed, "invalid_request"},
		{"malformed body", "application/json", `{"grant_type":`, http.StatusBadRequest, gateway.CodeMalformedRequest, "invalid_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/licenses/token", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			rec := httptest.NewRecorder()
			if err := e.ServeHTTP(rec, req, nil); err != nil {
				t.Fatal(err)
			}
			var p struct{ Code, Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if rec.Code != c.status || p.Code != c.code || p.Error != c.oauth {
				t.Fatalf("%d code %q error %q, want %d %q %q: %s", rec.Code, p.Code, p.Error, c.status, c.code, c.oauth, rec.Body)
			}
		})
	}
	// Other endpoints' problems carry no error member.
	req := httptest.NewRequest(http.MethodGet, "/v1/licenses/status", nil)
	rec := httptest.NewRecorder()
	if err := e.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("status problem carries an error member: %s", rec.Body)
	}
}

// refresh_reuse_grace: 30s by default, 0 turns it off, over 1m is refused
// at provision naming the option.
func TestRefreshReuseGraceOption(t *testing.T) {
	db := func() string { return filepath.Join(t.TempDir(), "lg.db") }
	for _, c := range []struct{ grace, want string }{
		{"", ""},
		{"refresh_reuse_grace 0", ""},
		{"refresh_reuse_grace 60s", ""},
	} {
		if err := validate(t, "{\n\tadmin off\n\tlicensegate {\n\t\tstorage embedded "+db()+"\n\t\t"+c.grace+"\n\t}\n}\n"); err != nil {
			t.Fatalf("%q: %v", c.grace, err)
		}
	}
	if got := adapt(t, "{\n\tlicensegate {\n\t\trefresh_reuse_grace 0\n\t}\n}\n"); !strings.Contains(got, `"refresh_reuse_grace": 0`) {
		t.Fatalf("refresh_reuse_grace 0 adapted to %s", got)
	}
	cfg := `{"admin":{"disabled":true},"apps":{"licensegate":{"storage":{"module":"embedded","path":"` + db() + `"},"refresh_reuse_grace":120000000000}}}`
	var c caddy.Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), "refresh_reuse_grace") {
		t.Fatalf("a 2m grace provisioned: %v", err)
	}
}

// testExchange is a license_exchange over svc as Provision would make it,
// with the given limits and no per-source budget.
func testExchange(svc *gateway.Service, logger *zap.Logger, requests, failures upstreams.Rate) *Exchange {
	return &Exchange{api: httpapi.Exchange{Service: svc, Logger: logger,
		Requests: httpapi.NewLimiter(requests), Failures: httpapi.NewLimiter(failures), ClientIP: clientIP}}
}

// Exchanges with the same limit share its limiter (a client's budget
// covers every endpoint, whichever mount it comes through); another rate
// is another limiter; once every holder is cleaned up, the next one
// starts afresh.
func TestExchangeLimitersPooledBySettings(t *testing.T) {
	a, b, c := new(Exchange), new(Exchange), new(Exchange)
	r := upstreams.Rate{Calls: 5, Period: time.Minute}
	la := pooledLimit(a, "rate_limit", r, httpapi.NewLimiter)
	lb := pooledLimit(b, "rate_limit", r, httpapi.NewLimiter)
	lc := pooledLimit(c, "rate_limit", upstreams.Rate{Calls: 6, Period: time.Minute}, httpapi.NewLimiter)
	fa := pooledLimit(a, "failed_limit", r, httpapi.NewLimiter)
	if la != lb || la == lc || la == fa {
		t.Fatalf("same settings shared: %v, other rate apart: %v, other option apart: %v", la == lb, la != lc, la != fa)
	}
	for _, e := range []*Exchange{a, b, c} {
		if err := e.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if fresh := pooledLimit(a, "rate_limit", r, httpapi.NewLimiter); fresh == la {
		t.Fatal("a limiter nobody held any more was handed out again")
	}
	_ = a.Cleanup()
}

package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/tokens"
	"github.com/licensegate/licensegate/upstreams"
)

// cancelBackend is a store and a way to make a context that is cancelled
// by the time a call reaches it.
type cancelBackend struct {
	st        store.Store
	cancelled func() context.Context
}

func cancelBackends(t *testing.T) map[string]func(t *testing.T) cancelBackend {
	return map[string]func(t *testing.T) cancelBackend{
		"embedded": func(t *testing.T) cancelBackend {
			return cancelBackend{openEmbedded(t), func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel() // bbolt does not look at contexts: cancelled before
				return ctx
			}}
		},
		"redis": func(t *testing.T) cancelBackend {
			srv := redistest.NewServer(t)
			client := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
			hook := &redistest.CancelHook{}
			client.AddHook(hook)
			t.Cleanup(func() { _ = client.Close() })
			rs := redisstore.New(client, redisstore.Options{})
			t.Cleanup(func() { _ = rs.Close() })
			return cancelBackend{rs, hook.Cancelled}
		},
	}
}

// A client that leaves while its request reads the store (a half-closed
// connection cancels the request's context) gets no 503 store_unavailable
// and is logged as no failure: the handlers end the request with 499,
// nginx's "client closed request", and nothing counts it against the
// client or the store.
func TestCancelledRequestIsNotStoreUnavailable(t *testing.T) {
	for backend, open := range cancelBackends(t) {
		t.Run(backend, func(t *testing.T) {
			b := open(t)
			core, logs := observer.New(zap.DebugLevel)
			logger := zap.New(core)
			clk := fixedClock{time.Now().Truncate(time.Second)}
			svc, sign := newTestService(t, b.st, clk.now) // key ring not loaded yet
			// A second gateway with its keys, for a gate that reads the
			// licence's status.
			putLicense(t, b.st, "lic_1", store.LicenseActive, clk.now())
			keyed, _ := newTestService(t, b.st, clk.now)
			if err := keyed.LoadKeys(context.Background()); err != nil {
				t.Fatal(err)
			}
			token := sign("lic_1")
			keyedGate := &Gate{gate: keyed.Gate(nil), logger: logger}
			lim := upstreams.Rate{Calls: 1, Period: time.Hour}
			ex := testExchange(svc, logger, upstreams.Rate{Calls: 1000, Period: time.Minute}, lim)
			gate := &Gate{gate: svc.Gate(nil), logger: logger}
			admin := &adminAPI{api: httpapi.Admin{Service: svc, Logger: logger}}

			refresh, _ := tokens.NewRefresh("")
			form := func(method, target, body string) *http.Request {
				r := httptest.NewRequest(method, target, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.RemoteAddr = "192.0.2.7:4711"
				return r
			}
			bearer := func(r *http.Request) *http.Request {
				r.Header.Set("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln")
				return r
			}
			requests := map[string]struct {
				req   func() *http.Request
				serve func(http.ResponseWriter, *http.Request)
			}{
				"admin list licences": {func() *http.Request { return httptest.NewRequest(http.MethodGet, "/licensegate/licenses", nil) },
					func(w http.ResponseWriter, r *http.Request) {
						if err := admin.serve(w, r); err != nil {
							t.Errorf("admin returned %v to Caddy (logged as an error)", err)
						}
					}},
				"refresh": {func() *http.Request {
					return form(http.MethodPost, "/licensing/token", "grant_type=refresh_token&refresh_token="+refresh)
				}, serveExchange(ex)},
				"activate": {func() *http.Request {
					r := form(http.MethodPost, "/licensing/activate", "license_key=ABCD-1234&domain=acme.com")
					r.Header.Set("Idempotency-Key", "k1")
					return r
				}, serveExchange(ex)},
				"gate": {func() *http.Request {
					r := httptest.NewRequest(http.MethodGet, "/api", nil)
					r.Header.Set("Authorization", "Bearer "+token)
					return r
				}, func(w http.ResponseWriter, r *http.Request) {
					_ = keyedGate.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
						w.WriteHeader(http.StatusNoContent) // admitted: the cache had the licence
						return nil
					}))
				}},
				"gate without keys": {func() *http.Request { return bearer(httptest.NewRequest(http.MethodGet, "/api", nil)) },
					func(w http.ResponseWriter, r *http.Request) {
						_ = gate.ServeHTTP(w, r, nil)
					}},
			}
			for name, rq := range requests {
				w := httptest.NewRecorder()
				rq.serve(w, rq.req().WithContext(b.cancelled()))
				if w.Code >= 500 || strings.Contains(w.Body.String(), gateway.CodeStoreUnavailable) {
					t.Errorf("%s with the client gone: %d %s", name, w.Code, w.Body)
				}
				if name == "gate" {
					// The status cache reads for every caller, detached from
					// each: the read may answer before the cancellation is
					// seen, and the request is then admitted.
					if w.Code != httpapi.StatusClientClosed && w.Code != http.StatusNoContent {
						t.Errorf("gate with the client gone: %d %s, want 499 or admitted", w.Code, w.Body)
					}
					continue
				}
				// Redis sees the cancellation (bbolt finishes first).
				if backend == "redis" && (w.Code != httpapi.StatusClientClosed || w.Body.Len() != 0) {
					t.Errorf("%s with the client gone: %d %q, want a bare 499", name, w.Code, w.Body)
				}
			}
			if errs := logs.FilterLevelExact(zapcore.ErrorLevel).All(); len(errs) > 0 {
				t.Errorf("logged at error level: %v", errs)
			}
			if n := ex.api.Failures.Clients(); n != 0 { // refunded calls leave no bucket
				t.Error("a cancelled activation counted as a failed attempt")
			}
			// Nothing remembered: the gate loads the keys now, at once.
			if err := svc.EnsureKeys(context.Background()); err != nil {
				t.Errorf("after the cancelled requests: %v", err)
			}
		})
	}
}

func serveExchange(ex *Exchange) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { _ = ex.ServeHTTP(w, r, nil) }
}

package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// marketplace is a remote source (budgeted, unlike the static one) that
// knows the keys in good and counts the calls that reach it.
type marketplace struct {
	calls atomic.Int64
	good  map[string]bool
}

func (*marketplace) Name() string { return "market" }
func (*marketplace) CanonicalKey(k string) (string, error) {
	if !strings.HasPrefix(k, "MK-") || len(k) != 3+16 {
		return "", upstreams.ErrKeyFormat
	}
	return k, nil
}
func (m *marketplace) Verify(_ context.Context, r upstreams.Request) upstreams.Verdict {
	m.calls.Add(1)
	if m.good[r.Key] {
		return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
	}
	return upstreams.InvalidVerdict(upstreams.NotFound)
}

func randomKey() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "MK-" + hex.EncodeToString(b)
}

// limitedExchange is an exchange selling p at the marketplace, with
// failed_limit and failed_source_limit as given and a generous rate_limit.
func limitedExchange(t *testing.T, m *marketplace, failed, perSource string) *Exchange {
	t.Helper()
	svc := newServiceForTest(t, gateway.Config{
		Sources:      map[string]upstreams.Source{"market": m},
		Products:     map[string]*gateway.Product{"p": {Name: "p", Sources: []string{"market"}, Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
	})
	fail, _ := upstreams.ParseRate(failed)
	src, _ := upstreams.ParseRate(perSource)
	e := testExchange(svc, zap.NewNop(), upstreams.Rate{Calls: 1_000_000, Period: time.Minute}, fail)
	e.api.Budget = gateway.NewFailureBudget(src, nil)
	return e
}

// activateFrom posts an activation as Caddy's server hands it on: with
// the client address it determined (trusted_proxies honoured) in vars.
func activateFrom(t *testing.T, e *Exchange, ip, key, domain string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/licenses/activate", strings.NewReader("license_key="+key+"&domain="+domain))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip}))
	w := httptest.NewRecorder()
	if err := e.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// 1,000 activations with random well-formed keys from 1,000 addresses of
// one IPv6 /64, 50 at a time: the /64 is one client, and its failed-
// activation calls are reserved before the work, so at most failed_limit
// reach the marketplace. An honest activation from elsewhere right after
// succeeds.
func TestFailedLimitPerIPv6Slash64(t *testing.T) {
	m := &marketplace{good: map[string]bool{"MK-00000000000000aa": true}}
	e := limitedExchange(t, m, "20/10m", "1000/m")
	var wg sync.WaitGroup
	var notFound, limited atomic.Int64
	next := make(chan int)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ip := fmt.Sprintf("2001:db8:7:9:%x:%x::1", i>>8, i&255)
				switch w := activateFrom(t, e, ip, randomKey(), "shop.example"); w.Code {
				case http.StatusNotFound:
					notFound.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					t.Errorf("from %s: %d %s", ip, w.Code, w.Body)
				}
			}
		}()
	}
	for i := range 1000 {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("1000 random keys from one /64: %d reached the marketplace (%d not found, %d rate_limited)", m.calls.Load(), notFound.Load(), limited.Load())
	if got := m.calls.Load(); got > 20 {
		t.Fatalf("%d calls reached the marketplace, failed_limit is 20", got)
	}
	if notFound.Load()+limited.Load() != 1000 {
		t.Fatalf("%d + %d answers", notFound.Load(), limited.Load())
	}
	w := activateFrom(t, e, "2001:db8:8::5", "MK-00000000000000aa", "buyer.com")
	if w.Code != http.StatusCreated {
		t.Fatalf("honest activation from another /64: %d %s", w.Code, w.Body)
	}
	// The /64 is still blocked, whichever address of it asks.
	if w := activateFrom(t, e, "2001:db8:7:9:ffff::1", "MK-00000000000000aa", "buyer.com"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("another address of the flooding /64: %d", w.Code)
	}
}

// Random keys from more clients than the per-IP limits catch stop at the
// marketplace's failure budget (429 rate_limited, no call); successful
// activations give their failed_limit call back; a licence already
// stored is not asked again.
func TestFailedSourceLimitAcrossClients(t *testing.T) {
	m := &marketplace{good: map[string]bool{"MK-00000000000000aa": true, "MK-00000000000000bb": true}}
	e := limitedExchange(t, m, "1/10m", "30/m")
	if w := activateFrom(t, e, "198.51.100.1", "MK-00000000000000aa", "buyer.com"); w.Code != http.StatusCreated {
		t.Fatalf("honest activation: %d %s", w.Code, w.Body)
	}
	for range 5 { // successes cost the client's failed_limit nothing
		if w := activateFrom(t, e, "198.51.100.1", "MK-00000000000000aa", "buyer.com"); w.Code != http.StatusOK {
			t.Fatalf("re-activation: %d %s", w.Code, w.Body)
		}
	}
	calls := m.calls.Load()
	limited := 0
	for i := range 1000 {
		w := activateFrom(t, e, fmt.Sprintf("10.%d.%d.1", i>>8, i&255), randomKey(), "x.example")
		if w.Code == http.StatusTooManyRequests {
			limited++
			if w.Header().Get("Retry-After") == "" {
				t.Fatal("rate_limited without Retry-After")
			}
		}
	}
	if got := m.calls.Load() - calls; got != 30 {
		t.Fatalf("%d random keys reached the marketplace, failed_source_limit is 30", got)
	}
	if limited != 970 {
		t.Fatalf("%d rate_limited, want 970", limited)
	}
	// A stored licence is answered from the store; the budget's 429 did
	// not count against the honest client's failed_limit.
	if w := activateFrom(t, e, "198.51.100.1", "MK-00000000000000aa", "buyer.com"); w.Code != http.StatusOK {
		t.Fatalf("stored licence during the flood: %d %s", w.Code, w.Body)
	}
	if w := activateFrom(t, e, "198.51.100.2", "MK-00000000000000bb", "second.com"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a new key while the budget is spent: %d %s", w.Code, w.Body)
	}
	if w := activateFrom(t, e, "198.51.100.2", randomKey(), "second.com"); w.Code != http.StatusTooManyRequests ||
		!strings.Contains(w.Body.String(), "unknown licence keys") {
		t.Fatalf("the budget's 429 counted against the client's failed_limit: %d %s", w.Code, w.Body)
	}
}

package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/gumroad"
	"github.com/licensegate/licensegate/upstreams/lemonsqueezy"
)

const (
	testHookSecret = "hook-secret-0123"
	testPathToken  = "ping-token-0123456789abcdef"
	testSeller     = "seller-1"
)

// hooksHandler is a Hooks over a service with no licences, receiving Lemon
// Squeezy and Gumroad webhooks.
func hooksHandler(t *testing.T) *Hooks {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	master, err := secret.New([]byte("httpapi-hooks-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := lemonsqueezy.NewHooks(testHookSecret)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := gumroad.NewHooks(testPathToken, testSeller)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := gateway.New(gateway.Config{Store: st, Master: master,
		Hooks: map[string]upstreams.HookVerifier{"lemonsqueezy": ls, "gumroad": gr}})
	if err != nil {
		t.Fatal(err)
	}
	return &Hooks{Service: svc, Logger: zap.NewNop()}
}

func signedLS(body string) http.Header {
	mac := hmac.New(sha256.New, []byte(testHookSecret))
	mac.Write([]byte(body))
	return http.Header{"X-Signature": {hex.EncodeToString(mac.Sum(nil))}, "Content-Type": {"application/json"}}
}

// TestHooksRoutes: the handler answers on the path's end, under any
// mount point; a source with a path token takes the segment after it; a
// path naming no configured source is 404; only POST; a refusal is a 401
// without a Bearer challenge; a verified hook naming nobody is a 200
// saying so.
func TestHooksRoutes(t *testing.T) {
	h := hooksHandler(t)
	body := `{"meta":{"event_name":"order_refunded"},"data":{"type":"orders","id":"1","attributes":{}}}`
	body2 := strings.Replace(body, `"id":"1"`, `"id":"2"`, 1)
	ping := url.Values{"seller_id": {testSeller}, "sale_id": {"s-1"}, "license_key": {"K-1"}}.Encode()
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	cases := []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		want                     string // the outcome, or the problem's code
	}{
		{"signed", "POST", "/hooks/lemonsqueezy", body, signedLS(body), 200, "ignored"},
		{"the same delivery again", "POST", "/hooks/lemonsqueezy", body, signedLS(body), 200, "replayed"},
		{"deeper mount", "POST", "/store/in/hooks/lemonsqueezy/", body2, signedLS(body2), 200, "ignored"},
		{"bad signature", "POST", "/hooks/lemonsqueezy", body + " ", signedLS(body), 401, "webhook_refused"},
		{"no signature", "POST", "/hooks/lemonsqueezy", body, nil, 401, "webhook_refused"},
		{"gumroad with its token", "POST", "/hooks/gumroad/" + testPathToken, ping, form, 200, "ignored"},
		{"gumroad with another token", "POST", "/hooks/gumroad/" + testPathToken + "x", ping, form, 401, "webhook_refused"},
		{"gumroad without a token", "POST", "/hooks/gumroad", ping, form, 401, "webhook_refused"},
		{"unknown source", "POST", "/hooks/envato", body, signedLS(body), 404, "not_found"},
		{"nothing", "POST", "/", body, nil, 404, "not_found"},
		{"GET", "GET", "/hooks/lemonsqueezy", "", nil, 405, "method_not_allowed"},
		{"too large", "POST", "/hooks/lemonsqueezy", strings.Repeat("x", upstreams.MaxHookBody+1), nil, 413, "request_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			for k, v := range c.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var got struct{ Outcome, Code string }
			_ = json.Unmarshal(w.Body.Bytes(), &got)
			if w.Code != c.status || got.Outcome+got.Code != c.want {
				t.Fatalf("%s %s = %d %s, want %d %s", c.method, c.path, w.Code, w.Body, c.status, c.want)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") != "" {
				t.Errorf("a refused webhook carries a Bearer challenge: %q", w.Header().Get("WWW-Authenticate"))
			}
			if w.Code == 405 && w.Header().Get("Allow") != "POST" {
				t.Errorf("Allow %q", w.Header().Get("Allow"))
			}
		})
	}
}

package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// Store webhooks against the binary (SPEC section 7; issue 24): a Lemon
// Squeezy refund webhook, signed with the webhook secret, makes the
// gateway recheck the licence it names, and the source's answer decides.

// hookSecret is the Lemon Squeezy webhook signing secret of these tests.
const hookSecret = "e2e-lemon-squeezy-hook-secret"

func init() { noteSecret(hookSecret) }

// hooksTemplate sells converter-pro on Lemon Squeezy, with store webhooks
// received under /hooks/.
const hooksTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		{{STORAGE}}
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		source lemonsqueezy {
			base_url {{VENDOR}}
			webhook_secret {env.LG_E2E_HOOK_SECRET}
		}
		product converter-pro {
			sources lemonsqueezy
			lemonsqueezy_product 4
			activations 2
			recheck every 24h mode {{MODE}} confirm 1
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange
	}
	handle /hooks/* {
		license_hooks
	}
	handle /convert* {
		license_gate
		reverse_proxy {{UPSTREAM}}
	}
}
`

// lemonCounterpart is Lemon Squeezy's License API for two keys, whose
// status the test sets; hang holds validate calls until released.
type lemonCounterpart struct {
	mu     sync.Mutex
	status map[string]string // key -> active, disabled
	calls  map[string]int
	hang   chan struct{} // non-nil: calls wait for it to close
}

// The keys the counterpart sells: lemonKey (licence key id 1, order 2) and
// lemonKey2 (3, order 4).
const lemonKey2 = "44444444-4444-4444-8444-444444444444"

func init() { noteSecret(lemonKey2) }

var lemonIDs = map[string][2]int{lemonKey: {1, 2}, lemonKey2: {3, 4}}

func (c *lemonCounterpart) set(key, status string) {
	c.mu.Lock()
	c.status[key] = status
	c.mu.Unlock()
}

func (c *lemonCounterpart) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[key]
}

func (c *lemonCounterpart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	key := r.PostForm.Get("license_key")
	c.mu.Lock()
	status, ok := c.status[key]
	c.calls[key]++
	hang := c.hang
	c.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
		c.mu.Lock()
		status = c.status[key]
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/v1/licenses/validate" || !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"valid":false,"error":"license_key not found."}`)
		return
	}
	ids := lemonIDs[key]
	_, _ = fmt.Fprintf(w, `{"valid":%t,"error":null,"license_key":{"id":%d,"status":%q,"key":%q,"activation_limit":2,"activation_usage":0,
		"created_at":"2021-01-24T14:15:07.000000Z","expires_at":null,"test_mode":false},"instance":null,
		"meta":{"store_id":1,"order_id":%d,"order_item_id":3,"product_id":4,"product_name":"Converter Pro","variant_id":5,"variant_name":"Default",
		"customer_id":6,"customer_name":"Luke Skywalker","customer_email":"luke@example.com"}}`, status == "active", ids[0], status, key, ids[1])
}

// hookGateway is a gateway selling on the counterpart, on the embedded
// store or on a Redis of its own.
func hookGateway(t *testing.T, storage, mode string) (*gateway, *lemonCounterpart) {
	t.Helper()
	lemon := &lemonCounterpart{status: map[string]string{lemonKey: "active", lemonKey2: "active"}, calls: map[string]int{}}
	vsrv := httptest.NewServer(lemon)
	t.Cleanup(vsrv.Close)
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = hooksTemplate
	g.vars["VENDOR"] = vsrv.URL
	g.vars["MODE"] = mode
	g.vars["STORAGE"] = "storage embedded " + filepath.Join(g.dir, "licensegate.db")
	if storage == "redis" {
		srv := redistest.NewServerArgs(t, "--appendonly", "yes", "--appendfsync", "always")
		g.vars["STORAGE"] = "storage redis redis://" + srv.Addr() + "/0"
	}
	g.extraEnv = append(g.extraEnv, "LG_E2E_HOOK_SECRET="+hookSecret)
	g.start()
	return g, lemon
}

// refundHook is Lemon Squeezy's order_refunded webhook for order.
func refundHook(order int) string {
	return fmt.Sprintf(`{"meta":{"event_name":"order_refunded","test_mode":false,"webhook_id":"7f0d"},"data":{"type":"orders","id":"%d",`+
		`"attributes":{"store_id":1,"identifier":"104e18a2-d755-4d4b-80c4-a6c1dcbe1c10","status":"refunded","refunded":true,`+
		`"refunded_at":"2026-12-07T12:00:00.000000Z","first_order_item":{"order_id":%d,"product_id":4}}}}`, order, order)
}

// postHook POSTs a Lemon Squeezy webhook body, signed with secret.
func (g *gateway) postHook(t *testing.T, secret, body string) response {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return do(t, http.MethodPost, g.url("/hooks/lemonsqueezy"), body, "Content-Type", "application/json",
		"X-Event-Name", "order_refunded", "X-Signature", hex.EncodeToString(mac.Sum(nil)))
}

// TestStoreHookRefund: acceptance points 1 and 2 of issue 24, on both
// stores and in both modes.
func TestStoreHookRefund(t *testing.T) {
	for _, storage := range []string{"embedded", "redis"} {
		for _, mode := range []string{"auto", "manual"} {
			t.Run(storage+"/"+mode, func(t *testing.T) { storeHookRefund(t, storage, mode) })
		}
	}
}

func storeHookRefund(t *testing.T, storage, mode string) {
	g, lemon := hookGateway(t, storage, mode)
	a := g.activate(lemonKey, "shop.example.com")
	expectStatus(t, a, http.StatusCreated, "")
	b := g.activate(lemonKey2, "other.example.com")
	expectStatus(t, b, http.StatusCreated, "")
	token, id := a.str("access_token"), a.str("license", "id")
	expectStatus(t, g.call(token), http.StatusOK, "")
	asked := lemon.count(lemonKey)

	// A forged hook: well formed, correctly signed, while the source says
	// the licence is valid. One recheck; nothing changes.
	expectHook(t, g.postHook(t, hookSecret, refundHook(2)), "queued")
	waitFor(t, 5*time.Second, "the recheck a hook asks for, written", func() bool {
		return g.adminCall(http.MethodGet, "licenses/"+id, nil).str("license", "last_outcome") == "valid"
	})
	if got := lemon.count(lemonKey); got != asked+1 {
		t.Fatalf("a forged hook cost %d checks, want 1", got-asked)
	}
	expectStatus(t, g.call(token), http.StatusOK, "")
	expectLicenseStatus(t, g, id, "active")

	// The refund, with a bad signature: 401, nothing asked, nothing
	// changed. A hook for the other licence, served after anything queued
	// before it, shows that nothing was.
	lemon.set(lemonKey, "disabled")
	bad := g.postHook(t, "not-the-secret", refundHook(2)+" ")
	expectStatus(t, bad, http.StatusUnauthorized, "webhook_refused")
	other := lemon.count(lemonKey2)
	expectHook(t, g.postHook(t, hookSecret, refundHook(4)), "queued")
	waitFor(t, 5*time.Second, "the other licence's check", func() bool { return lemon.count(lemonKey2) == other+1 })
	if got := lemon.count(lemonKey); got != asked+1 {
		t.Fatalf("a badly signed hook was checked: %d checks, want 1", got-asked)
	}
	expectStatus(t, g.call(token), http.StatusOK, "")

	// The refund, signed: the licence is out of service (auto, confirm 1)
	// or flagged (manual) within 5 s.
	expectHook(t, g.postHook(t, hookSecret, refundHook(2)+"\n"), "queued")
	took := waitFor(t, 5*time.Second, "the refund taking effect", func() bool {
		if mode == "auto" {
			return g.call(token).status == http.StatusForbidden
		}
		return licenseStatus(t, g, id) == "flagged"
	})
	t.Logf("refund webhook to effect: %s", took)
	if got := lemon.count(lemonKey); got != asked+2 {
		t.Errorf("the source was asked %d times after the first hook, want 2 (the bad signature asks nothing)", got-asked)
	}

	// The same delivery again: 200 replayed. The next hook's check (of
	// the other licence) is served after anything queued before it, so
	// once it is seen, a recheck the replay queued would have been too.
	expectHook(t, g.postHook(t, hookSecret, refundHook(2)+"\n"), "replayed")
	other = lemon.count(lemonKey2)
	expectHook(t, g.postHook(t, hookSecret, refundHook(4)+"\n"), "queued")
	waitFor(t, 5*time.Second, "the other licence's check", func() bool { return lemon.count(lemonKey2) == other+1 })
	if got := lemon.count(lemonKey); got != asked+2 {
		t.Errorf("after the replay the source was asked about the licence %d times in all, want 2", got-asked)
	}
	unknown := g.postHook(t, hookSecret, refundHook(99))
	expectHook(t, unknown, "ignored")
}

// TestStoreHookSurvivesKill9: a gateway killed between a hook's 200 and
// the recheck it queued runs that recheck after a restart (acceptance 4).
func TestStoreHookSurvivesKill9(t *testing.T) {
	for _, storage := range []string{"embedded", "redis"} {
		t.Run(storage, func(t *testing.T) {
			g, lemon := hookGateway(t, storage, "auto")
			a := g.activate(lemonKey, "shop.example.com")
			expectStatus(t, a, http.StatusCreated, "")
			token := a.str("access_token")
			asked := lemon.count(lemonKey)
			hang := make(chan struct{})
			lemon.mu.Lock()
			lemon.hang, lemon.status[lemonKey] = hang, "disabled"
			lemon.mu.Unlock()

			expectHook(t, g.postHook(t, hookSecret, refundHook(2)), "queued")
			waitFor(t, 5*time.Second, "the queued recheck's call", func() bool { return lemon.count(lemonKey) == asked+1 })
			g.kill9() // the check is in flight: no answer was written
			lemon.mu.Lock()
			lemon.hang = nil
			lemon.mu.Unlock()
			close(hang)

			g.start()
			// Redis: the dead instance's recheck lease runs out first (30 s).
			took := waitFor(t, 60*time.Second, "the queued recheck after the restart", func() bool {
				return g.call(token).status == http.StatusForbidden
			})
			t.Logf("refused %s after the restart", took)
		})
	}
}

// expectHook checks a webhook's answer: 200 with the outcome.
func expectHook(t *testing.T, r response, outcome string) {
	t.Helper()
	if r.status != http.StatusOK || r.json["outcome"] != outcome {
		t.Fatalf("webhook answered %d %s, want 200 %s", r.status, r.body, outcome)
	}
}

// licenseStatus reads a licence's status from the admin API.
func licenseStatus(t *testing.T, g *gateway, id string) string {
	t.Helper()
	return g.adminCall(http.MethodGet, "licenses/"+id, nil).str("license", "status")
}

func expectLicenseStatus(t *testing.T, g *gateway, id, want string) {
	t.Helper()
	if got := licenseStatus(t, g, id); got != want {
		t.Fatalf("licence %s is %q, want %q", id, got, want)
	}
}

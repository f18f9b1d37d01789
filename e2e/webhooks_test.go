package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

const e2eWebhookSecret = "whsec_" + "ZTJlLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="

// withWebhook adds a webhook block for url to a gateway template.
func withWebhook(template, url string) string {
	block := "\t\twebhook " + url + " {\n\t\t\tsecret " + e2eWebhookSecret + "\n\t\t\ttimeout 2s\n\t\t}\n\t\tproduct other-product {"
	return strings.Replace(template, "\t\tproduct other-product {", block, 1)
}

// hookSink receives webhooks, checking each signature its own way.
type hookSink struct {
	t      *testing.T
	mu     sync.Mutex
	ids    map[string]int
	bodies []string
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(e2eWebhookSecret, "whsec_"))
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	if !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil))+" ") {
		h.t.Errorf("delivery %s: bad signature", id)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Type == "" {
		h.t.Errorf("body %s: %v", body, err)
	}
	h.mu.Lock()
	h.ids[id]++
	h.bodies = append(h.bodies, string(body))
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookSink) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ids)
}

// Acceptance 3: kill -9 of the gateway while 500 deliveries are pending
// (the receiver refusing connections), then a restart: all of them are
// delivered once the receiver is back, on both stores.
func TestKill9WithPendingDeliveries(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nobody listens yet: refused
			g := newGateway(t, "127.0.0.1:1")
			if backend == "redis" {
				g.template = redisTemplate
				for k, v := range map[string]string{"REDIS": redistest.StartServer(t), "REDIS_AUTH": "", "CACHE_TTL": "30s", "STALE": "10m"} {
					g.vars[k] = v
				}
			}
			g.template = withWebhook(g.template, "http://"+addr+"/hook")
			g.start()
			a := g.activate("KEY-AAAA-0001", "acme.com")
			expectStatus(t, a, http.StatusCreated, "")
			lic := a.str("license", "id")
			for i := 0; i < 250; i++ {
				expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/lock", nil), 200)
				expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/unlock", nil), 200)
			}
			pending := g.adminCall(http.MethodGet, "webhooks/deliveries?status=pending&limit=500", nil)
			expectAdmin(t, pending, 200)
			if n := len(pending.json["deliveries"].([]any)); n != 500 {
				t.Fatalf("%d pending deliveries before the kill, want 500", n)
			}
			retryAt := firstRetry(t, pending.json["deliveries"].([]any))
			g.kill9()
			sink := &hookSink{t: t, ids: map[string]int{}}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: sink}
			go srv.Serve(ln)
			defer srv.Close()
			g.start()
			// The licence's first delivery failed before the kill and is
			// retried on its schedule: 5-6 s after the first attempt, or 5
			// minutes after the second when the 500 admin calls took longer
			// than that (a loaded machine). Its other events follow it. A
			// kill during an attempt also leaves the dead process's claim
			// on it for the lease (a minute). The bound: the retry, the
			// lease, then a minute of deliveries.
			bound := max(time.Until(retryAt), 0) + 2*time.Minute
			t.Logf("the tried delivery is due again in %s: waiting up to %s", time.Until(retryAt).Round(time.Millisecond), bound.Round(time.Second))
			waitFor(t, bound, "all 501 events delivered", func() bool { return sink.distinct() == 501 })
			sink.mu.Lock()
			defer sink.mu.Unlock()
			for _, b := range sink.bodies {
				for _, bad := range []string{"KEY-AAAA-0001", a.str("refresh_token"), a.str("access_token"), e2eWebhookSecret, testSecret} {
					if strings.Contains(b, bad) {
						t.Fatalf("a webhook body holds a code, token or secret: %s", b)
					}
				}
			}
		})
	}
}

// firstRetry is when the delivery already tried (the licence's first, the
// head of its queue) is due again, from the admin API's listing.
func firstRetry(t *testing.T, deliveries []any) time.Time {
	t.Helper()
	var at time.Time
	for _, d := range deliveries {
		e := d.(map[string]any)
		if n, _ := e["attempts"].(float64); n == 0 {
			continue
		}
		next, err := time.Parse(time.RFC3339Nano, e["next_attempt_at"].(string))
		if err != nil {
			t.Fatalf("next_attempt_at: %v", err)
		}
		at = next
	}
	if at.IsZero() {
		t.Log("no delivery was tried before the kill")
		at = time.Now()
	}
	return at
}

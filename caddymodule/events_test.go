package caddymodule_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/internal/caddyrun"
	"github.com/licensegate/licensegate/internal/redistest"
)

func init() {
	caddy.RegisterModule(recorder{})
}

// recorded holds what the test events handler received.
var recorded struct {
	mu     sync.Mutex
	events []caddy.Event
}

// recorder is a test events handler (events.handlers.lgtest_recorder).
type recorder struct{}

func (recorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.lgtest_recorder", New: func() caddy.Module { return new(recorder) }}
}

func (recorder) Handle(_ context.Context, e caddy.Event) error {
	recorded.mu.Lock()
	recorded.events = append(recorded.events, e)
	recorded.mu.Unlock()
	return nil
}

func (*recorder) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return nil
}

const hookSecret = "whsec_" + "dGhlLXdlYmhvb2stc2VjcmV0LW9mLXRoZS1ldmVudHMtdGVzdA=="

// hookReceiver verifies every delivery by its own Standard Webhooks check
// (independent of package webhooks) and keeps the bodies.
type hookReceiver struct {
	t      *testing.T
	mu     sync.Mutex
	bodies []map[string]any
	raw    []string
	ids    []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(hookSecret, "whsec_"))
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	sec, _ := strconv.ParseInt(ts, 10, 64)
	ok := false
	for _, s := range strings.Fields(r.Header.Get("webhook-signature")) {
		ok = ok || hmac.Equal([]byte(s), []byte(want))
	}
	if !ok || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute || id == "" {
		h.t.Errorf("delivery %s: bad signature %q or timestamp %s", id, r.Header.Get("webhook-signature"), ts)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		h.t.Errorf("body %s: %v", body, err)
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, m)
	h.raw = append(h.raw, string(body))
	h.ids = append(h.ids, id)
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) types() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, b := range h.bodies {
		out[fmt.Sprint(b["type"])]++
	}
	return out
}

func post(t *testing.T, u string, form url.Values, headers ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// Acceptance 1, 5 and 6 in-process: the state changes an installer and the
// author make arrive at a real receiver, signed, once each, with the
// documented body and no code, token or secret; a Caddy events handler
// subscribed to licensegate.license_suspended gets the suspension, with the
// licence id, when the admin API suspends the licence. Both stores.
func TestEventsReachWebhooksAndCaddyEvents(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			testEvents(t, backend)
		})
	}
}

func testEvents(t *testing.T, backend string) {
	recv := &hookReceiver{t: t}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	dir := t.TempDir()
	keys := "key,product,type,licensed_to,expires_at,support_until,activations,status\n" +
		"KEY-EVT-0001,converter-pro,regular,Alice,,2030-01-01T00:00:00Z,,active\n"
	if err := os.WriteFile(filepath.Join(dir, "keys.csv"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LG_TEST_WEBHOOK_SECRET", hookSecret)
	storage := "storage embedded " + filepath.Join(dir, "lg.db")
	if backend == "redis" {
		storage = "storage redis {\n\t\t\taddress redis://" + redistest.StartServer(t) + "/0\n\t\t}"
	}
	addr, admin := caddyrun.FreeAddr(t), caddyrun.FreeAddr(t)
	base := "http://" + addr + "/v1/licenses"
	caddyrun.Load(t, fmt.Sprintf(`{
	admin %s
	events {
		on licensegate.license_suspended lgtest_recorder
	}
	licensegate {
		%s
		secret test-secret-0123456789abcdefghijklmnop
		source static {
			file %s
		}
		product converter-pro {
			sources static
			activations 1
		}
		webhook %s/hook {
			secret {env.LG_TEST_WEBHOOK_SECRET}
			timeout 5s
		}
	}
}

http://%s {
	handle /v1/licenses/* {
		license_exchange
	}
}
`, admin, storage, filepath.Join(dir, "keys.csv"), srv.URL, addr))
	recorded.mu.Lock()
	recorded.events = nil
	recorded.mu.Unlock()

	status, act := caddyrun.Activate(t, base, "KEY-EVT-0001", "acme.com")
	if status != http.StatusCreated {
		t.Fatalf("activation: %d %v", status, act)
	}
	lic := fmt.Sprint(act["license"].(map[string]any)["id"])
	access, refresh := fmt.Sprint(act["access_token"]), fmt.Sprint(act["refresh_token"])
	if status, _ := caddyrun.Activate(t, base, "KEY-EVT-0001", "acme.com"); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("re-activation: %d", status)
	}
	st, second := caddyrun.Activate(t, base, "KEY-EVT-0001", "acme.com")
	if st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("third activation: %d %v", st, second)
	}
	access, refresh = fmt.Sprint(second["access_token"]), fmt.Sprint(second["refresh_token"])
	if st, mv := post(t, base+"/move", url.Values{"domain": {"new-acme.com"}}, "Authorization", "Bearer "+access); st != http.StatusOK {
		t.Fatalf("move: %d %v", st, mv)
	} else {
		access, refresh = fmt.Sprint(mv["access_token"]), fmt.Sprint(mv["refresh_token"])
	}
	// Rotate twice, then replay the first: a clone.
	_, r1 := post(t, base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	_, _ = post(t, base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fmt.Sprint(r1["refresh_token"])}})
	if st, _ := post(t, base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}); st != http.StatusUnauthorized {
		t.Fatalf("replayed refresh token: %d", st)
	}
	// A fresh installation, deactivated by its installer.
	_, third := caddyrun.Activate(t, base, "KEY-EVT-0001", "new-acme.com")
	if st, _ := post(t, base+"/deactivate", url.Values{}, "Authorization", "Bearer "+fmt.Sprint(third["access_token"])); st != http.StatusOK && st != http.StatusNoContent {
		t.Fatalf("deactivate: %d", st)
	}
	for _, action := range []string{"suspend", "reinstate", "lock", "unlock"} {
		if st, body := post(t, "http://"+admin+"/licensegate/licenses/"+lic+"/"+action, nil); st != http.StatusOK {
			t.Fatalf("%s: %d %v", action, st, body)
		}
	}
	if st, body := post(t, "http://"+admin+"/licensegate/keys/rotate", nil); st != http.StatusOK {
		t.Fatalf("rotate: %d %v", st, body)
	}
	// The second re-activation repeats the first from the same address
	// within the hour: coalesced into its entry (issue 20, N5).
	want := map[string]int{
		"installation.created": 2, "installation.reactivated": 1, "installation.moved": 1,
		"installation.cloned": 1, "installation.deactivated": 1, "license.suspended": 1, "license.reinstated": 1,
		"license.locked": 1, "license.unlocked": 1, "keys.rotated": 1,
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && fmt.Sprint(recv.types()) != fmt.Sprint(want) {
		time.Sleep(50 * time.Millisecond) // waiting on the worker's poll, not timing it
	}
	if got := recv.types(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", got, want)
	}
	recv.mu.Lock()
	seen := map[string]bool{}
	for i, b := range recv.bodies {
		if seen[recv.ids[i]] {
			t.Errorf("webhook-id %s delivered twice", recv.ids[i])
		}
		seen[recv.ids[i]] = true
		data, _ := b["data"].(map[string]any)
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(b["timestamp"])); err != nil || data == nil || len(b) != 3 {
			t.Errorf("body %v: want {type, timestamp, data}", b)
		}
		if b["type"] != "keys.rotated" && data["license_id"] != lic {
			t.Errorf("body %v: license_id is not %s", b, lic)
		}
		for _, secret := range []string{"KEY-EVT-0001", "key-evt-0001", refresh, fmt.Sprint(r1["refresh_token"]), "whsec_", "eyJ", "rt_", "test-secret", "client_ip", "ip"} {
			if strings.Contains(recv.raw[i], `"`+secret+`"`) || (len(secret) > 4 && strings.Contains(recv.raw[i], secret)) {
				t.Errorf("body %s holds %q", recv.raw[i], secret)
			}
		}
	}
	recv.mu.Unlock()

	// The admin API lists the deliveries and refuses to retry one that
	// did not fail.
	resp, err := http.Get("http://" + admin + "/licensegate/webhooks/deliveries?status=delivered&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Deliveries []map[string]any `json:"deliveries"`
		NextCursor string           `json:"next_cursor"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(page.Deliveries) != 5 || page.NextCursor == "" || page.Deliveries[0]["status"] != "delivered" {
		t.Fatalf("deliveries: %d %+v", resp.StatusCode, page)
	}
	if _, ok := page.Deliveries[0]["claim"]; ok {
		t.Errorf("a delivery shows its worker's claim: %v", page.Deliveries[0])
	}
	if st, _ := post(t, "http://"+admin+"/licensegate/webhooks/deliveries/"+fmt.Sprint(page.Deliveries[0]["id"])+"/retry", nil); st != http.StatusNotFound {
		t.Errorf("retrying a delivered entry: %d, want 404", st)
	}
	if st, _ := post(t, "http://"+admin+"/licensegate/webhooks/deliveries?status=bogus", nil); st != http.StatusMethodNotAllowed {
		t.Errorf("POST deliveries: %d, want 405", st)
	}

	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	if len(recorded.events) != 1 || recorded.events[0].Name() != "licensegate.license_suspended" || recorded.events[0].Data["license_id"] != lic {
		t.Fatalf("the events handler got %+v, want licensegate.license_suspended for %s", recorded.events, lic)
	}
}

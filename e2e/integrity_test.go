package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// behindProxy makes the gateway trust X-Forwarded-For from 127.0.0.1, as
// behind a load balancer (docs/installer-api.md: trusted_proxies, trusted_proxies_strict),
// so a test can speak for clients on other networks honestly: the
// exchange sees the address the proxy vouches for.
func behindProxy(template string) string {
	return strings.Replace(template, "\tadmin 127.0.0.1:{{ADMIN}}\n",
		"\tadmin 127.0.0.1:{{ADMIN}}\n\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t\ttrusted_proxies_strict\n\t}\n", 1)
}

// activateAs activates from the client address ip (through the trusted
// proxy header).
func (g *gateway) activateAs(ip, key, domain string) response {
	g.t.Helper()
	return g.activate(key, domain, "X-Forwarded-For", ip)
}

// auditEvents returns the admin audit API's events with the action.
func (g *gateway) auditEvents(action string) []map[string]any {
	g.t.Helper()
	r := g.adminCall(http.MethodGet, "audit?limit=1000", nil)
	expectAdmin(g.t, r, 200)
	var out []map[string]any
	for _, e := range r.json["events"].([]any) {
		if ev := e.(map[string]any); ev["action"] == action {
			out = append(out, ev)
		}
	}
	return out
}

// The leaked-code story (issues 9 and 20): a second client claiming the
// buyer's domain with the code supersedes the buyer's tokens (enforced
// within a second) and is audited with both addresses, but its tokens
// cannot deactivate or move the installation; the buyer's reinstall from
// its own network takes the domain back; a few such rounds from distinct
// networks lock the licence, which refuses new activations while the
// buyer's newest token keeps working and its own network can still
// re-activate, until the author unlocks it.
func TestLeakedCodeStory(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var g *gateway
			if backend == "redis" {
				srv := redistest.NewServer(t)
				up := httptest.NewServer(&recordingUpstream{})
				t.Cleanup(up.Close)
				g = newGateway(t, strings.TrimPrefix(up.URL, "http://"))
				g.template = behindProxy(redisTemplate)
				g.vars["REDIS"], g.vars["REDIS_AUTH"], g.vars["CACHE_TTL"], g.vars["STALE"] = srv.Addr(), "", "30s", "10m"
			} else {
				up := httptest.NewServer(&recordingUpstream{})
				t.Cleanup(up.Close)
				g = newGateway(t, strings.TrimPrefix(up.URL, "http://"))
				g.template = behindProxy(caddyfileTemplate)
			}
			g.start()
			const buyerIP = "198.51.100.7"

			first := g.activateAs(buyerIP, "KEY-AAAA-0001", "buyer.com")
			expectStatus(t, first, http.StatusCreated, "")
			lic, ins := first.str("license", "id"), first.str("installation_id")
			buyerToken := first.str("access_token")
			expectStatus(t, g.call(buyerToken), http.StatusOK, "")

			// A second client, on another network, claims buyer.com.
			clone := g.activateAs("203.0.1.9", "KEY-AAAA-0001", "buyer.com")
			expectStatus(t, clone, http.StatusOK, "")
			if clone.str("installation_id") != ins {
				t.Fatalf("re-activation answered installation %s, want %s", clone.str("installation_id"), ins)
			}
			took := waitFor(t, time.Second, "the buyer's earlier token refused", func() bool {
				return g.call(buyerToken).str("code") == "token_revoked"
			})
			t.Logf("%s: the superseded token was refused %s after the re-activation answered", backend, took.Round(time.Microsecond))
			expectStatus(t, g.call(buyerToken), http.StatusForbidden, "token_revoked")
			evs := g.auditEvents("installation.reactivated")
			if len(evs) != 1 || evs[0]["client_ip"] != "203.0.1.9" || evs[0]["previous_client_ip"] != buyerIP || evs[0]["installation_id"] != ins {
				t.Fatalf("installation.reactivated events %v", evs)
			}

			// Issue 20, N1: the holder's tokens are admitted at the gate but
			// cannot deactivate or move the buyer's installation, and each
			// such attempt is a sighting of the holder's network.
			cloneToken := clone.str("access_token")
			expectStatus(t, g.call(cloneToken), http.StatusOK, "")
			deact := do(t, http.MethodPost, g.url("/v1/licenses/deactivate"), nil, "Authorization", "Bearer "+cloneToken, "X-Forwarded-For", "203.0.1.9")
			expectStatus(t, deact, http.StatusForbidden, "installation_contested")
			move := do(t, http.MethodPost, g.url("/v1/licenses/move"), map[string]string{"domain": "holder.com"},
				"Authorization", "Bearer "+clone.str("refresh_token"), "X-Forwarded-For", "203.0.1.9")
			expectStatus(t, move, http.StatusForbidden, "installation_contested")
			if move.header.Get("Retry-After") == "" {
				t.Errorf("installation_contested without Retry-After")
			}

			// The buyer re-enters the code from its own network: it wins,
			// superseding the holder's tokens.
			back := g.activateAs(buyerIP, "KEY-AAAA-0001", "buyer.com")
			expectStatus(t, back, http.StatusOK, "")
			buyerToken = back.str("access_token")
			waitFor(t, time.Second, "the holder's token refused", func() bool {
				return g.call(cloneToken).str("code") == "token_revoked"
			})

			// The leaked code claims the domain again from other networks:
			// since the buyer took it back, refused for the cooldown (no
			// ping-pong), each attempt a sighting; five distinct foreign
			// networks are the threshold; the sixth locks.
			for i := 2; i <= 5; i++ {
				expectStatus(t, g.activateAs(fmt.Sprintf("203.0.%d.9", i), "KEY-AAAA-0001", "buyer.com"), http.StatusForbidden, "installation_contested")
				back := g.activateAs(buyerIP, "KEY-AAAA-0001", "buyer.com")
				expectStatus(t, back, http.StatusOK, "")
				buyerToken = back.str("access_token")
			}
			// One network more: locked. The attempt is refused, so the
			// buyer's newest token stays current.
			expectStatus(t, g.activateAs("203.0.6.9", "KEY-AAAA-0001", "buyer.com"), http.StatusForbidden, "license_locked")
			expectStatus(t, g.activateAs("203.0.7.9", "KEY-AAAA-0001", "claim.com"), http.StatusForbidden, "license_locked")
			expectStatus(t, g.call(buyerToken), http.StatusOK, "")
			// The buyer's own network still re-activates its installation.
			home := g.activateAs(buyerIP, "KEY-AAAA-0001", "buyer.com")
			expectStatus(t, home, http.StatusOK, "")
			buyerToken = home.str("access_token")
			expectStatus(t, g.call(buyerToken), http.StatusOK, "")
			locks := g.auditEvents("license.locked")
			if len(locks) != 1 || !strings.Contains(strOf(locks[0]["reason"]), "distinct client networks") || strings.Contains(string(g.adminCall(http.MethodGet, "audit?limit=1000", nil).body), "claim.com") {
				t.Fatalf("license.locked events %v", locks)
			}
			if d := g.adminCall(http.MethodGet, "licenses/"+lic, nil); d.json["license"].(map[string]any)["locked"] != true {
				t.Fatalf("licence after the lock: %s", d.body)
			}
			// The audit names both addresses of each foreign re-activation.
			for _, ev := range g.auditEvents("installation.reactivated") {
				if ev["client_ip"] == nil || ev["previous_client_ip"] == nil {
					t.Errorf("installation.reactivated without both addresses: %v", ev)
				}
			}

			// The author unlocks: the buyer activates again.
			expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/unlock", map[string]string{"reason": "buyer confirmed"}), 200)
			again := g.activateAs(buyerIP, "KEY-AAAA-0001", "buyer.com")
			expectStatus(t, again, http.StatusOK, "")
			expectStatus(t, g.call(again.str("access_token")), http.StatusOK, "")
		})
	}
}

// Free installs are capped with the defaults: of 50 siteN.test
// activations 5 succeed and the rest are 409 with the holders masked;
// staging is capped at 3 per production domain.
func TestFreeInstallCaps(t *testing.T) {
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 1000/m\n\t\t\tfailed_limit 1000/m\n\t\t}"
	g.start()
	statuses := map[int]int{}
	var last response
	for i := range 50 {
		r := g.activate("KEY-AAAA-0001", fmt.Sprintf("site%d.test", i))
		statuses[r.status]++
		if r.status == http.StatusConflict {
			last = r
		}
	}
	if statuses[http.StatusCreated] != 5 || statuses[http.StatusConflict] != 45 {
		t.Fatalf("50 local activations answered %v, want 5 201 and 45 409", statuses)
	}
	expectStatus(t, last, http.StatusConflict, "activation_limit_reached")
	acts, _ := last.json["activations"].([]any)
	if len(acts) != 5 {
		t.Fatalf("activations %s", last.body)
	}
	h := acts[0].(map[string]any)
	// A local install reveals nothing worth hiding: shown as it is.
	if h["domain"] != "site0.test" || h["created_at"] == nil {
		t.Fatalf("holder %v", h)
	}
	if _, ok := h["last_seen_at"]; !ok {
		t.Fatalf("holder shape %s", last.body)
	}
	expectStatus(t, g.activate("KEY-AAAA-0001", "buyer.com"), http.StatusCreated, "")
	statuses = map[int]int{}
	for i := range 10 {
		statuses[g.activate("KEY-AAAA-0001", fmt.Sprintf("s%d.buyer.com", i)).status]++
	}
	if statuses[http.StatusCreated] != 3 || statuses[http.StatusConflict] != 7 {
		t.Fatalf("10 staging activations answered %v, want 3 201 and 7 409", statuses)
	}
}

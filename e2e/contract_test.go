package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// Issue 20, acceptance 1: the contract items on both stores, through the
// real binary. A product rechecked every 1s starts with one warning; a
// licence refunded at its source is flagged within 3 s (manual mode) or
// suspended on the first answer (auto, confirm 1); an expired static key
// is refused license_expired; a 409 shows a local install in clear and a
// public IP with its first and last group.

// contractKeys: two live keys and one whose expiry has passed.
const contractKeys = `key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-DDDD-0001,converter-pro,regular,Ann,,2099-01-01T00:00:00Z,,active
KEY-DDDD-0002,converter-pro,regular,Ben,2020-01-01T00:00:00Z,2099-01-01T00:00:00Z,,active
KEY-DDDD-0003,converter-pro,regular,Cy,,2099-01-01T00:00:00Z,,active
`

// contractGateway is a gateway on backend with productOptions, started.
func contractGateway(t *testing.T, backend, productOptions string) *gateway {
	t.Helper()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	if backend == "redis" {
		srv := redistest.NewServer(t)
		g.template = redisTemplate
		g.vars["REDIS"], g.vars["REDIS_AUTH"], g.vars["CACHE_TTL"], g.vars["STALE"] = srv.Addr(), "", "30s", "10m"
	}
	g.vars["ACTIVATIONS"] = "2"
	g.vars["PRODUCT_OPTIONS"] = productOptions
	g.writeKeys(contractKeys)
	g.start()
	return g
}

func (g *gateway) writeKeys(csv string) {
	g.t.Helper()
	// Written beside and renamed, as an editor saves: the source never
	// reads half a file.
	tmp := filepath.Join(g.dir, "keys.csv.tmp")
	if err := os.WriteFile(tmp, []byte(csv), 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(g.dir, "keys.csv")); err != nil {
		g.t.Fatal(err)
	}
}

// licenseStatus reads a licence's status from the admin API.
func (g *gateway) licenseStatus(id string) string {
	g.t.Helper()
	return do(g.t, http.MethodGet, g.adminURL("/licensegate/licenses/"+id), nil).str("license", "status")
}

// awaitStatus polls the admin API until the licence has status, and
// returns how long that took; it fails after limit.
func (g *gateway) awaitStatus(id, status string, limit time.Duration) time.Duration {
	g.t.Helper()
	start := time.Now()
	for {
		got := g.licenseStatus(id)
		if got == status {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			g.t.Fatalf("licence %s is %q after %v, want %q", id, got, limit, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// revokeAndAwait activates KEY-DDDD-0001, revokes it in the key file and
// waits up to 3 s for the licence to reach status; it returns the access
// token the activation gave.
func (g *gateway) revokeAndAwait(status string) string {
	g.t.Helper()
	a := g.activate("KEY-DDDD-0001", "buyer.com")
	expectStatus(g.t, a, http.StatusCreated, "")
	g.writeKeys(strings.Replace(contractKeys, "Ann,,2099-01-01T00:00:00Z,,active", "Ann,,2099-01-01T00:00:00Z,,revoked", 1))
	took := g.awaitStatus(a.str("license", "id"), status, 3*time.Second)
	g.t.Logf("%s %v after the revocation at the source", status, took)
	return a.str("access_token")
}

func TestRecheckEverySecondFlagsWithinSeconds(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := contractGateway(t, backend, "recheck every 1s")
			warnings := strings.Count(g.logs.String(), "recheck every is below 1h0m0s")
			if warnings != 1 {
				t.Errorf("%d warnings naming recheck every and its floor, want 1:\n%s", warnings, g.logs.String())
			}
			token := g.revokeAndAwait("flagged")
			// Manual mode: the flag still serves.
			expectStatus(t, g.call(token), http.StatusOK, "")
		})
	}
}

func TestAutoConfirmOneSuspendsOnTheFirstAnswer(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := contractGateway(t, backend, "recheck every 1s mode auto confirm 1")
			token := g.revokeAndAwait("suspended")
			audit := do(t, http.MethodGet, g.adminURL("/licensegate/audit"), nil)
			if n := strings.Count(string(audit.body), `"license.suspended"`); n != 1 {
				t.Errorf("%d license.suspended audit entries, want 1: %s", n, audit.body)
			}
			expectStatus(t, g.call(token), http.StatusForbidden, "license_suspended")
		})
	}
}

func TestExpiredStaticKeyAndMaskedHolders(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := contractGateway(t, backend, "local_domains slot")
			expectStatus(t, g.activate("KEY-DDDD-0002", "expired.com"), http.StatusForbidden, "license_expired")

			expectStatus(t, g.activate("KEY-DDDD-0003", "localhost"), http.StatusCreated, "")
			expectStatus(t, g.activate("KEY-DDDD-0003", "203.0.113.7"), http.StatusCreated, "")
			full := g.activate("KEY-DDDD-0003", "third.com")
			expectStatus(t, full, http.StatusConflict, "activation_limit_reached")
			body := string(full.body)
			for _, want := range []string{`"domain":"localhost"`, `"domain":"203.*.*.7"`} {
				if !strings.Contains(body, want) {
					t.Errorf("409 lacks %s: %s", want, body)
				}
			}
			if strings.Contains(body, "203.0.113.7") {
				t.Errorf("409 shows the public IP whole: %s", body)
			}
		})
	}
}

// Issue 20, #8: nothing checked that Redis keeps what a 201 promised. A
// Redis with neither AOF nor RDB is a warning at start and a degraded
// health; one with an append-only file is reported as such.
func TestRedisPersistenceReported(t *testing.T) {
	for _, c := range []struct {
		name    string
		srv     func(testing.TB) *redistest.Server
		want    string
		warning bool
	}{
		{"none", redistest.NewServer, "none", true},
		{"aof", redistest.NewDurableServer, "aof", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := c.srv(t)
			g := startOnRedis(t, srv.Addr(), nil)
			warned := strings.Contains(g.logs.String(), "redis has neither AOF nor RDB persistence")
			if warned != c.warning {
				t.Errorf("warning logged: %v, want %v", warned, c.warning)
			}
			h := do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil)
			if got := h.str("store", "persistence"); got != c.want {
				t.Fatalf("health store.persistence %q, want %q: %s", got, c.want, h.body)
			}
			if degraded := strings.Contains(string(h.body), `"store persistence"`); degraded != c.warning {
				t.Errorf("health degraded by persistence: %v, want %v: %s", degraded, c.warning, h.body)
			}
		})
	}
}

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

// policyKeys: a regular licence with support, one whose support lapsed,
// and an extended one with support.
const policyKeys = `key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-CCCC-0001,converter-pro,regular,Rita,,2099-01-01T00:00:00Z,,active
KEY-CCCC-0002,converter-pro,regular,Lapsed,,2000-01-01T00:00:00Z,,active
KEY-CCCC-0003,converter-pro,extended,Ext,,2099-01-01T00:00:00Z,,active
`

// policyRoutes adds routes gated with require lines before /convert*.
const policyRoutes = `	handle /updates* {
		license_gate converter-pro {
			require support_active
		}
		respond "updates"
	}
	handle /pro* {
		license_gate converter-pro {
			require support_active
			require type extended
			require class production staging
		}
		respond "pro"
	}
	handle /convert* {`

// newPolicyGateway is a gateway on backend (embedded or redis) with the
// require routes and the policy keys, not started yet.
func newPolicyGateway(t *testing.T, backend string) *gateway {
	t.Helper()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	if backend == "redis" {
		srv := redistest.NewServer(t)
		g.template = redisTemplate
		g.vars["REDIS"], g.vars["REDIS_AUTH"], g.vars["CACHE_TTL"], g.vars["STALE"] = srv.Addr(), "", "30s", "10m"
	}
	g.template = strings.Replace(g.template, "\thandle /convert* {", policyRoutes, 1)
	if err := os.WriteFile(filepath.Join(g.dir, "keys.csv"), []byte(policyKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gateway) get(path, token string) response {
	g.t.Helper()
	return do(g.t, http.MethodGet, g.url(path), nil, "Authorization", "Bearer "+token)
}

// Acceptance 1 of issue 12: support-lapsed and regular licences are
// refused on require routes with 403 requirement_not_met naming the
// condition, and admitted on the plain route; the extended licence with
// support passes everywhere.
func TestRequireOnBothStores(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := newPolicyGateway(t, backend)
			g.start()
			tok := map[string]string{}
			for key, domain := range map[string]string{"KEY-CCCC-0001": "regular.com", "KEY-CCCC-0002": "lapsed.com", "KEY-CCCC-0003": "ext.com"} {
				a := g.activate(key, domain)
				expectStatus(t, a, http.StatusCreated, "")
				tok[key] = a.str("access_token")
			}
			for _, c := range []struct {
				key, path string
				status    int
				detail    string
			}{
				{"KEY-CCCC-0001", "/convert", 200, ""},
				{"KEY-CCCC-0001", "/updates", 200, ""},
				{"KEY-CCCC-0001", "/pro", 403, "type extended"},
				{"KEY-CCCC-0002", "/convert", 200, ""},
				{"KEY-CCCC-0002", "/updates", 403, "active support"},
				{"KEY-CCCC-0002", "/pro", 403, "active support"},
				{"KEY-CCCC-0003", "/convert", 200, ""},
				{"KEY-CCCC-0003", "/updates", 200, ""},
				{"KEY-CCCC-0003", "/pro", 200, ""},
			} {
				r := g.get(c.path, tok[c.key])
				if c.status == 200 {
					expectStatus(t, r, 200, "")
					continue
				}
				expectStatus(t, r, c.status, "requirement_not_met")
				if d := r.str("detail"); !strings.Contains(d, c.detail) {
					t.Errorf("%s on %s: detail %q does not name %q", c.key, c.path, d, c.detail)
				}
			}
		})
	}
}

// last_seen_at on both stores: a gateway that stops writes the uses its
// gate noted (the last_seen worker's final batch), so after a restart the
// admin API, the CLI's installation table and the 409 activations list
// show when the installation was last used.
func TestLastSeenShownAfterRestart(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			g := newPolicyGateway(t, backend)
			g.start()
			a := g.activate("KEY-CCCC-0001", "regular.com")
			expectStatus(t, a, http.StatusCreated, "")
			lic, ins := a.str("license", "id"), a.str("installation_id")
			expectStatus(t, g.call(a.str("access_token")), http.StatusOK, "")
			g.stop()
			g.start()
			seen := g.adminCall(http.MethodGet, "installations/"+ins, nil)
			expectAdmin(t, seen, 200)
			if !strings.Contains(string(seen.body), `"last_seen_at":"20`) {
				t.Fatalf("installation after restart: %s", seen.body)
			}
			out, err := g.cli("license", "show", lic)
			if err != nil || !strings.HasPrefix(lastSeenColumn(out, ins), time.Now().UTC().Format("2006-01-02")) {
				t.Fatalf("license show: the installation's LAST SEEN is not today: %v\n%s", err, out)
			}
			full := g.activate("KEY-CCCC-0001", "second.com")
			expectStatus(t, full, http.StatusConflict, "activation_limit_reached")
			if !strings.Contains(string(full.body), `"last_seen_at":"20`) {
				t.Fatalf("409 activations: %s", full.body)
			}
		})
	}
}

// lastSeenColumn is the LAST SEEN value of the CLI table's row of
// installation ins (its last column).
func lastSeenColumn(table, ins string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ins {
			return f[len(f)-1]
		}
	}
	return ""
}

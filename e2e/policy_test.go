package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

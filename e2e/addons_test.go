package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// Add-ons and entitlements against the binary (SPEC section 14; issue 25,
// acceptance 1 and 2), on both stores; on Redis with two instances.

const addonKeys = `key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-SUIT-0001,suite,regular,Ann,,2099-01-01T00:00:00Z,,active
KEY-SUIT-0002,suite,regular,Ben,,2099-01-01T00:00:00Z,,active
KEY-SUIT-0003,suite,extended,Cy,,2099-01-01T00:00:00Z,,active
KEY-THEM-0001,themes,regular,Ann,,2099-01-01T00:00:00Z,,active
KEY-THEM-0002,themes,regular,Ann,,2099-01-01T00:00:00Z,,active
`

const addonTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		{{STORAGE}}
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		source static {
			file {{DIR}}/keys.csv
		}
		product suite {
			sources static
			entitlements regular=basic extended=basic,saas
		}
		product themes {
			sources static
			addon_of suite
			recheck every 168h mode auto confirm 1
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange {
			rate_limit 100000/m
			failed_limit 100000/m
		}
	}
	handle /themes {
		license_gate suite {
			require entitlement themes
			forward installation entitlements
		}
		respond "{license.entitlements}"
	}
	handle /api {
		license_gate suite {
			quota regular=2/d extended=5/d
		}
		respond "ok"
	}
}
`

// addonGateway is a gateway on storage ("embedded" or a Redis address),
// started.
func addonGateway(t *testing.T, storage string) *gateway {
	t.Helper()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = addonTemplate
	g.vars["STORAGE"] = "storage embedded " + filepath.Join(g.dir, "licensegate.db")
	if storage != "embedded" {
		g.vars["STORAGE"] = "storage redis redis://" + storage + "/0"
	}
	g.writeKeys(addonKeys)
	g.start()
	return g
}

// tokenEnt reads an access token's ent claim.
func tokenEnt(t *testing.T, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Ent []string `json:"ent"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Ent
}

func TestAddonsEndToEnd(t *testing.T) {
	for _, storage := range []string{"embedded", "redis"} {
		t.Run(storage, func(t *testing.T) {
			gates := []*gateway{}
			if storage == "embedded" {
				gates = append(gates, addonGateway(t, "embedded"))
			} else {
				addr := redistest.NewServer(t).Addr()
				gates = append(gates, addonGateway(t, addr), addonGateway(t, addr))
			}
			addonsEndToEnd(t, gates)
		})
	}
}

func addonsEndToEnd(t *testing.T, gates []*gateway) {
	g := gates[0]
	base := g.activate("KEY-SUIT-0001", "shop.example.com")
	expectStatus(t, base, http.StatusCreated, "")
	if got := tokenEnt(t, base.str("access_token")); !slices.Equal(got, []string{"basic"}) {
		t.Fatalf("the base token's ent %v", got)
	}
	plain := g.activate("KEY-SUIT-0002", "plain.example.com")
	expectStatus(t, plain, http.StatusCreated, "")

	// An add-on on its own is refused: it attaches to an installation.
	expectStatus(t, g.activate("KEY-THEM-0001", "shop.example.com"), http.StatusForbidden, "wrong_product")

	att := do(t, http.MethodPost, g.url("/v1/licenses/addons"), map[string]string{"license_key": "KEY-THEM-0001"},
		"Authorization", "Bearer "+base.str("access_token"))
	expectStatus(t, att, http.StatusCreated, "")
	token := att.str("access_token")
	if got := tokenEnt(t, token); !slices.Equal(got, []string{"basic", "themes"}) {
		t.Fatalf("the new token's ent %v, want both", got)
	}
	if att.str("addon", "product") != "themes" || att.str("installation_id") != base.str("installation_id") {
		t.Fatalf("attach answer: %s", att.body)
	}
	again := do(t, http.MethodPost, g.url("/v1/licenses/addons"), map[string]string{"license_key": "KEY-THEM-0001"},
		"Authorization", "Bearer "+token)
	expectStatus(t, again, http.StatusOK, "")
	token = again.str("access_token")
	// The stable codes of the refusals, through HTTP: a base key is no
	// add-on; a second licence of the add-on on one installation.
	attach := func(key, token string) response {
		return do(t, http.MethodPost, g.url("/v1/licenses/addons"), map[string]string{"license_key": key}, "Authorization", "Bearer "+token)
	}
	expectStatus(t, attach("KEY-SUIT-0002", token), http.StatusForbidden, "wrong_product")
	expectStatus(t, attach("KEY-THEM-0002", token), http.StatusConflict, "addon_already_attached")
	expectStatus(t, attach("KEY-THEM-0002", "not-a-token"), http.StatusUnauthorized, "invalid_token")

	for _, gw := range gates {
		r := gw.get("/themes", token)
		expectStatus(t, r, http.StatusOK, "")
		if string(r.body) != "basic,themes" {
			t.Fatalf("{license.entitlements} %q", r.body)
		}
		expectStatus(t, gw.get("/themes", plain.str("access_token")), http.StatusForbidden, "requirement_not_met")
	}
	status := g.get("/v1/licenses/status", token)
	expectStatus(t, status, http.StatusOK, "")
	if !strings.Contains(string(status.body), `"addons":[{"license_id"`) {
		t.Fatalf("status shows no add-on: %s", status.body)
	}
	detail := g.adminCall(http.MethodGet, "installations/"+base.str("installation_id"), nil)
	if !strings.Contains(string(detail.body), `"product":"themes"`) {
		t.Fatalf("the admin API shows no add-on under the installation: %s", detail.body)
	}

	// The add-on's licence revoked at its source and rechecked: every
	// instance refuses within 1 s.
	for _, gw := range gates {
		gw.writeKeys(strings.Replace(addonKeys, "KEY-THEM-0001,themes,regular,Ann,,2099-01-01T00:00:00Z,,active",
			"KEY-THEM-0001,themes,regular,Ann,,2099-01-01T00:00:00Z,,revoked", 1))
	}
	rc := g.adminCall(http.MethodPost, "licenses/"+att.str("addon", "license_id")+"/recheck", nil)
	expectStatus(t, rc, http.StatusOK, "")
	for i, gw := range gates {
		took := waitFor(t, time.Second, "the revoked add-on refused", func() bool {
			return gw.get("/themes", token).status == http.StatusForbidden
		})
		t.Logf("instance %d refused the revoked add-on %v after the recheck", i+1, took)
		expectStatus(t, gw.get("/api", token), http.StatusOK, "") // the base is untouched
	}
	if att.str("refresh_token") != "" || again.str("refresh_token") != "" {
		t.Fatal("an attach answered a refresh token: a second family beside the installation's")
	}
	ref := do(t, http.MethodPost, g.url("/v1/licenses/token"), map[string]string{"grant_type": "refresh_token", "refresh_token": base.str("refresh_token")})
	expectStatus(t, ref, http.StatusOK, "")
	if got := tokenEnt(t, ref.str("access_token")); !slices.Equal(got, []string{"basic"}) {
		t.Fatalf("the next token's ent %v, want the base's alone", got)
	}

	// Quota per licence type: the RateLimit fields show each type's limit.
	ext := g.activate("KEY-SUIT-0003", "big.example.com")
	expectStatus(t, ext, http.StatusCreated, "")
	for _, c := range []struct {
		token, policy string
	}{{plain.str("access_token"), `"quota";q=2;w=86400`}, {ext.str("access_token"), `"quota";q=5;w=86400`}} {
		r := g.get("/api", c.token)
		expectStatus(t, r, http.StatusOK, "")
		if got := r.header.Get("RateLimit-Policy"); got != c.policy {
			t.Fatalf("RateLimit-Policy %q, want %q", got, c.policy)
		}
	}
}

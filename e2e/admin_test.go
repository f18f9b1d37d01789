package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// admin calls the gateway's admin API and decodes the JSON answer.
func (g *gateway) adminCall(method, path string, body any) response {
	g.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, g.adminURL("/licensegate/"+path), rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	_ = json.Unmarshal(raw, &r.json)
	return r
}

func expectAdmin(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("admin status %d, want %d: %s", r.status, status, r.body)
	}
}

// waitFor polls cond for up to d, returning how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, d)
	return 0
}

func TestAdminAPI(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		g, _ := startDefault(t)
		testAdminAPI(t, g)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.NewServer(t)
		testAdminAPI(t, startOnRedis(t, srv.Addr(), nil))
	})
}

func testAdminAPI(t *testing.T, g *gateway) {
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	lic := a.str("license", "id")
	ins := a.str("installation_id")
	token := a.str("access_token")

	t.Run("show and lookup", func(t *testing.T) {
		r := g.adminCall(http.MethodGet, "licenses/"+lic, nil)
		expectAdmin(t, r, 200)
		if r.str("license", "id") != lic || r.str("license", "status") != "active" || r.str("license", "licensed_to") != "Alice" {
			t.Fatalf("%s", r.body)
		}
		inss, _ := r.json["installations"].([]any)
		if len(inss) != 1 || inss[0].(map[string]any)["domain"] != "acme.com" {
			t.Fatalf("installations: %s", r.body)
		}
		l := g.adminCall(http.MethodPost, "licenses/lookup", map[string]string{"license_key": "KEY-AAAA-0001"})
		expectAdmin(t, l, 200)
		if l.str("license", "id") != lic || strings.Contains(string(l.body), "KEY-AAAA-0001") {
			t.Fatalf("lookup: %s", l.body)
		}
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/lookup", map[string]string{"license_key": "KEY-AAAA-0005"}), 404)
		expectAdmin(t, g.adminCall(http.MethodGet, "licenses/lic_nope", nil), 404)
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/lookup", map[string]string{}), 400)
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/lookup", "not an object"), 400)
		expectAdmin(t, g.adminCall(http.MethodDelete, "licenses/"+lic, nil), 405)
		expectAdmin(t, g.adminCall(http.MethodGet, "nothing-here", nil), 404)
	})

	t.Run("suspend and reinstate reach the gate", func(t *testing.T) {
		expectStatus(t, g.call(token), 200, "")
		r := g.adminCall(http.MethodPost, "licenses/"+lic+"/suspend", map[string]string{"reason": "chargeback"})
		expectAdmin(t, r, 200)
		if r.str("license", "status") != "suspended" {
			t.Fatalf("%s", r.body)
		}
		took := waitFor(t, time.Second, "suspension enforced", func() bool { return g.call(token).status == 403 })
		t.Logf("suspension enforced by the gate after %s", took)
		expectStatus(t, g.call(token), 403, "license_suspended")
		expectStatus(t, g.activate("KEY-AAAA-0001", "acme.com"), 403, "license_suspended")
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/reinstate", map[string]string{"reason": "resolved"}), 200)
		waitFor(t, time.Second, "reinstatement", func() bool { return g.call(token).status == 200 })
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/explode", nil), 404)
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/lic_nope/suspend", nil), 404)
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/suspend", map[string]int{"reason": 1}), 400)
	})

	t.Run("lock keeps existing installs and refuses new ones", func(t *testing.T) {
		g.vars["ACTIVATIONS"] = "3"
		g.reload()
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/lock", map[string]string{"reason": "code leaked"}), 200)
		expectStatus(t, g.call(token), 200, "")
		expectStatus(t, g.activate("KEY-AAAA-0001", "pirate.com"), 403, "license_locked")
		// A re-activation from the installation's own network still works
		// (issue 20, N1: the buyer is never locked out of their own site);
		// it supersedes the earlier token.
		re := g.activate("KEY-AAAA-0001", "acme.com")
		expectStatus(t, re, 200, "")
		waitFor(t, time.Second, "the superseded token refused", func() bool { return g.call(token).status == 403 })
		token = re.str("access_token")
		expectStatus(t, g.call(token), 200, "")
		expectAdmin(t, g.adminCall(http.MethodPost, "licenses/"+lic+"/unlock", map[string]string{"reason": "buyer confirmed"}), 200)
		expectStatus(t, g.activate("KEY-AAAA-0001", "second-site.com"), 201, "")
	})

	t.Run("installations", func(t *testing.T) {
		r := g.adminCall(http.MethodGet, "installations/"+ins, nil)
		expectAdmin(t, r, 200)
		if r.str("installation", "domain") != "acme.com" || r.str("license", "id") != lic {
			t.Fatalf("%s", r.body)
		}
		expectAdmin(t, g.adminCall(http.MethodGet, "installations/ins_nope", nil), 404)
		d := g.adminCall(http.MethodDelete, "installations/"+ins, map[string]string{"reason": "server gone"})
		expectAdmin(t, d, 200)
		if d.str("installation", "status") != "deactivated" {
			t.Fatalf("%s", d.body)
		}
		waitFor(t, time.Second, "deactivation enforced", func() bool { return g.call(token).status == 403 })
		expectStatus(t, g.call(token), 403, "installation_deactivated")
		expectAdmin(t, g.adminCall(http.MethodDelete, "installations/ins_nope", nil), 404)
	})

	t.Run("key rotation", func(t *testing.T) {
		b := g.activate("KEY-AAAA-0004", "dave.com")
		expectStatus(t, b, 201, "")
		oldKid := kidOf(t, b.str("access_token"))
		r := g.adminCall(http.MethodPost, "keys/rotate", nil)
		expectAdmin(t, r, 200)
		newKid := r.str("kid")
		if newKid == "" || newKid == oldKid {
			t.Fatalf("rotate: %s (old kid %s)", r.body, oldKid)
		}
		c := g.activate("KEY-AAAA-0004", "dave.test") // another installation: b's token stays current
		expectStatus(t, c, 201, "")
		if kidOf(t, c.str("access_token")) != newKid {
			t.Fatal("new tokens are not signed with the new key")
		}
		expectStatus(t, g.call(b.str("access_token")), 200, "")
		expectStatus(t, g.call(c.str("access_token")), 200, "")
		jwks := do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil)
		if !strings.Contains(string(jwks.body), oldKid) || !strings.Contains(string(jwks.body), newKid) {
			t.Fatalf("JWKS lacks a key: %s", jwks.body)
		}
	})

	t.Run("list and stats", func(t *testing.T) {
		r := g.adminCall(http.MethodGet, "licenses?status=active", nil)
		expectAdmin(t, r, 200)
		if l, _ := r.json["licenses"].([]any); len(l) != 2 {
			t.Fatalf("active licences: %s", r.body)
		}
		r = g.adminCall(http.MethodGet, "licenses?q=dave.com", nil)
		if l, _ := r.json["licenses"].([]any); len(l) != 1 || l[0].(map[string]any)["licensed_to"] != "Dave" {
			t.Fatalf("q=dave.com: %s", r.body)
		}
		r = g.adminCall(http.MethodGet, "licenses?limit=1", nil)
		next := r.str("next_cursor")
		if l, _ := r.json["licenses"].([]any); len(l) != 1 || next == "" {
			t.Fatalf("page 1: %s", r.body)
		}
		r2 := g.adminCall(http.MethodGet, "licenses?limit=1&cursor="+next, nil)
		if l, _ := r2.json["licenses"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] == r.json["licenses"].([]any)[0].(map[string]any)["id"] {
			t.Fatalf("page 2: %s", r2.body)
		}
		expectAdmin(t, g.adminCall(http.MethodGet, "licenses?limit=x", nil), 400)
		s := g.adminCall(http.MethodGet, "stats", nil)
		expectAdmin(t, s, 200)
		if s.num("licenses", "active") != 2 || s.num("installations", "deactivated") != 1 {
			t.Fatalf("stats: %s", s.body)
		}
	})

	t.Run("audit lists every change once, in order, with its reason", func(t *testing.T) {
		r := g.adminCall(http.MethodGet, "audit", nil)
		expectAdmin(t, r, 200)
		var got []string
		for _, e := range r.json["events"].([]any) {
			ev := e.(map[string]any)
			got = append(got, ev["action"].(string)+":"+strOf(ev["reason"]))
		}
		want := []string{
			"installation.created:", "license.suspended:chargeback", "license.reinstated:resolved",
			"license.locked:code leaked", "installation.reactivated:", "license.unlocked:buyer confirmed", "installation.created:",
			"installation.deactivated:server gone", "installation.created:", "keys.rotated:", "installation.created:",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("audit:\n got %v\nwant %v", got, want)
		}
		expectAdmin(t, g.adminCall(http.MethodGet, "audit?since=yesterday", nil), 400)
		expectAdmin(t, g.adminCall(http.MethodGet, "audit?cursor=garbage(", nil), 400)
		p := g.adminCall(http.MethodGet, "audit?limit=2", nil)
		if evs, _ := p.json["events"].([]any); len(evs) != 2 || p.str("next_cursor") == "" {
			t.Fatalf("audit page: %s", p.body)
		}
	})

	t.Run("the admin listener refuses foreign hosts", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, g.adminURL("/licensegate/stats"), nil)
		req.Host = "evil.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign Host: %d, want 403", resp.StatusCode)
		}
	})
}

func strOf(v any) string {
	s, _ := v.(string)
	return s
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal([]byte(mustDecode(t, strings.Split(tok, ".")[0])), &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

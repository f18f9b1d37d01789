package e2e

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func startDefault(t *testing.T) (*gateway, *recordingUpstream) {
	t.Helper()
	up := &recordingUpstream{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	g := newGateway(t, strings.TrimPrefix(srv.URL, "http://"))
	g.start()
	return g, up
}

func TestActivateThenGate(t *testing.T) {
	g, up := startDefault(t)

	first := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, first, http.StatusCreated, "")
	ins := first.str("installation_id")
	token := first.str("access_token")
	if !strings.HasPrefix(ins, "ins_") || token == "" || !strings.HasPrefix(first.str("refresh_token"), "rt_") {
		t.Fatalf("activation answer incomplete: %s", first.body)
	}
	if first.str("token_type") != "Bearer" || first.num("expires_in") != 3600 {
		t.Fatalf("token_type/expires_in wrong: %s", first.body)
	}
	lic := []string{"license"}
	if got := first.str(append(lic, "install_class")...); got != "production" {
		t.Fatalf("install_class %q", got)
	}
	if first.num("license", "activations_used") != 1 || first.num("license", "activations_limit") != 1 {
		t.Fatalf("slots wrong: %s", first.body)
	}
	if strings.Contains(string(first.body), "KEY-AAAA-0001") {
		t.Fatal("activation answer echoes the licence key")
	}

	// The gate admits the token and forwards licence facts, not credentials.
	// X-License_Type would reach a php_fastcgi backend as HTTP_X_LICENSE_TYPE;
	// Caddy drops underscore headers unless allowed, and the gate strips them.
	r := g.call(token, "X-License-Product", "forged", "X-License-Admin", "true", "X-License_Type", "extended")
	expectStatus(t, r, http.StatusOK, "")
	h := up.lastHeader()
	want := map[string]string{
		"X-License-Installation":   ins,
		"X-License-Product":        "converter-pro",
		"X-License-Domain":         "acme.com",
		"X-License-Type":           "regular",
		"X-License-Support-Active": "true",
		"X-License-Class":          "production",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("upstream saw %s=%q, want %q", k, got, v)
		}
	}
	if h.Get("Authorization") != "" {
		t.Error("upstream saw the Authorization header")
	}
	if h.Get("X-License-Admin") != "" {
		t.Error("client-sent X-License-Admin reached the upstream")
	}
	for name := range h {
		if _, ours := want[name]; !ours && strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "x-license-") {
			t.Errorf("client-sent %s reached the upstream", name)
		}
	}
	if vals := h.Values("X-License-Product"); len(vals) != 1 {
		t.Errorf("X-License-Product has %d values, want 1: %v", len(vals), vals)
	}
	// Placeholders for later handlers: {license.id} {license.class} {license.stale}.
	who := do(t, http.MethodGet, g.url("/whoami"), nil, "Authorization", "Bearer "+token)
	if want := first.str("license", "id") + " production false"; who.status != http.StatusOK || string(who.body) != want {
		t.Errorf("placeholders: %d %q, want %q", who.status, who.body, want)
	}

	// Same licence, same domain (however written): the same installation.
	for _, d := range []string{"acme.com", "www.acme.com", "ACME.com", "https://www.Acme.COM:8443/shop/install.php?x=1", "acme.com.", "http://acme.com/"} {
		again := g.activate("KEY-AAAA-0001", d)
		expectStatus(t, again, http.StatusOK, "")
		if again.str("installation_id") != ins {
			t.Fatalf("domain %q: installation %q, want %q", d, again.str("installation_id"), ins)
		}
		if again.num("license", "activations_used") != 1 {
			t.Fatalf("domain %q used another slot: %s", d, again.body)
		}
	}

	// Local installs use no slot.
	for _, d := range []string{"localhost", "shop.test", "127.0.0.1", "app.localhost"} {
		loc := g.activate("KEY-AAAA-0001", d)
		expectStatus(t, loc, http.StatusCreated, "")
		if loc.str("license", "install_class") != "local" || loc.num("license", "activations_used") != 1 {
			t.Fatalf("domain %q: %s", d, loc.body)
		}
	}
	if r := g.activate("KEY-AAAA-0001", "http://LOCALHOST:8000/install/"); r.status != http.StatusOK {
		t.Fatalf("localhost with port and path is a new installation: %s", r.body)
	}
	// A subdomain of the active production domain is staging, free by default.
	stg := g.activate("KEY-AAAA-0001", "staging.acme.com")
	expectStatus(t, stg, http.StatusCreated, "")
	if stg.str("license", "install_class") != "staging" {
		t.Fatalf("staging: %s", stg.body)
	}

	// The single production slot is used: another domain is refused,
	// listing the holder with its domain masked.
	full := g.activate("KEY-AAAA-0001", "other.com")
	expectStatus(t, full, http.StatusConflict, "activation_limit_reached")
	acts, _ := full.json["activations"].([]any)
	if len(acts) != 1 || acts[0].(map[string]any)["domain"] != "a***e.com" || strings.Contains(string(full.body), "acme.com") {
		t.Fatalf("activations %s, want the masked a***e.com only", full.body)
	}
}

func TestActivationRefusals(t *testing.T) {
	g, _ := startDefault(t)
	act := g.url("/v1/licenses/activate")
	cases := []struct {
		name   string
		body   any
		hdr    []string
		method string
		status int
		code   string
	}{
		{"malformed json", nil, []string{"Content-Type", "application/json"}, "", 400, "malformed_request"},
		{"missing domain", map[string]string{"license_key": "KEY-AAAA-0001"}, nil, "", 422, "validation_failed"},
		{"bad domain", map[string]string{"license_key": "KEY-AAAA-0001", "domain": "a..b"}, nil, "", 422, "validation_failed"},
		{"public suffix domain", map[string]string{"license_key": "KEY-AAAA-0001", "domain": "https://github.io/"}, nil, "", 422, "validation_failed"},
		{"bad ip", map[string]string{"license_key": "KEY-AAAA-0001", "domain": "acme.com", "ip": "999.1.1.1"}, nil, "", 422, "validation_failed"},
		{"control character in label", map[string]string{"license_key": "KEY-AAAA-0001", "domain": "acme.com", "label": "shop\x1b[31m"}, nil, "", 422, "validation_failed"},
		{"number for key", map[string]any{"license_key": 12, "domain": "acme.com"}, nil, "", 422, "validation_failed"},
		{"look-alike dash", map[string]string{"license_key": "KEY\u2013AAAA-0001", "domain": "acme.com"}, nil, "", 422, "invalid_key_format"},
		{"unknown key", map[string]string{"license_key": "KEY-ZZZZ-9999", "domain": "acme.com"}, nil, "", 404, "license_not_found"},
		{"revoked key", map[string]string{"license_key": "KEY-AAAA-0003", "domain": "acme.com"}, nil, "", 403, "license_revoked"},
		{"wrong product", map[string]string{"license_key": "KEY-BBBB-0001", "domain": "acme.com", "product": "converter-pro"}, nil, "", 403, "wrong_product"},
		{"unknown product", map[string]string{"license_key": "KEY-AAAA-0001", "domain": "acme.com", "product": "nope"}, nil, "", 422, "validation_failed"},
		{"developer licence on a public domain", map[string]string{"license_key": "KEY-AAAA-0006", "domain": "acme.com"}, nil, "", 403, "domain_not_allowed"},
		{"unsupported media type", "x", []string{"Content-Type", "text/plain"}, "", 415, "unsupported_media_type"},
		{"GET activate", nil, nil, http.MethodGet, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			body := c.body
			if c.name == "malformed json" {
				body = "{not json"
			}
			r := do(t, method, act, body, c.hdr...)
			expectStatus(t, r, c.status, c.code)
			if c.code == "validation_failed" {
				if errs, _ := r.json["errors"].(map[string]any); len(errs) == 0 {
					t.Fatalf("no errors member: %s", r.body)
				}
			}
		})
	}

	t.Run("body over 64 KiB", func(t *testing.T) {
		big := "license_key=KEY-AAAA-0001&domain=acme.com&label=" + strings.Repeat("x", 70<<10)
		expectStatus(t, do(t, http.MethodPost, act, big), 413, "request_too_large")
	})
	t.Run("form body and purchase_code alias", func(t *testing.T) {
		r := do(t, http.MethodPost, act, "purchase_code=KEY-AAAA-0004&domain=form.example.com")
		expectStatus(t, r, http.StatusCreated, "")
	})
	t.Run("multipart form, as PHP's curl posts an array", func(t *testing.T) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("license_key", "KEY-AAAA-0004")
		_ = mw.WriteField("domain", "https://form.example.com/")
		_ = mw.Close()
		r := do(t, http.MethodPost, act, body.String(), "Content-Type", mw.FormDataContentType())
		expectStatus(t, r, http.StatusOK, "") // the installation the form made above
	})
	t.Run("developer licence on localhost", func(t *testing.T) {
		expectStatus(t, g.activate("KEY-AAAA-0006", "localhost"), http.StatusCreated, "")
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		expectStatus(t, do(t, http.MethodPost, g.url("/v1/licenses/nope"), nil), 404, "not_found")
	})
	t.Run("nothing was recorded by refusals", func(t *testing.T) {
		// The revoked and unknown keys left no licence: a lookup by a valid
		// key still shows exactly its own installation count.
		r := g.activate("KEY-AAAA-0005", "erin.com")
		expectStatus(t, r, http.StatusCreated, "")
		if r.num("license", "activations_used") != 1 {
			t.Fatalf("%s", r.body)
		}
		// The other product's key, refused as wrong_product, was not stored.
		if lk := g.adminCall(http.MethodPost, "licenses/lookup", map[string]string{"license_key": "KEY-BBBB-0001"}); lk.status != http.StatusNotFound {
			t.Fatalf("lookup of a key refused as wrong_product: %d %s", lk.status, lk.body)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0004", "idem.com", "Idempotency-Key", "install-42")
	b := g.activate("KEY-AAAA-0004", "idem.com", "Idempotency-Key", "install-42")
	expectStatus(t, a, http.StatusCreated, "")
	expectStatus(t, b, http.StatusCreated, "")
	if string(a.body) != string(b.body) {
		t.Fatalf("retried activation answered differently:\n%s\n%s", a.body, b.body)
	}
	// Without the header the same activation is idempotent on the
	// installation, with fresh tokens.
	c := g.activate("KEY-AAAA-0004", "idem.com")
	expectStatus(t, c, http.StatusOK, "")
	if c.str("installation_id") != a.str("installation_id") || c.str("access_token") == a.str("access_token") {
		t.Fatalf("plain retry: %s", c.body)
	}
	// The same key for another request is refused.
	d := g.activate("KEY-AAAA-0004", "other-idem.com", "Idempotency-Key", "install-42")
	expectStatus(t, d, http.StatusUnprocessableEntity, "idempotency_key_reused")
}

func TestExchangeRateLimits(t *testing.T) {
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 8/m\n\t\t\tfailed_limit 3/m\n\t\t}"
	g.start() // its readiness probe spends one request

	// Failed activations: three, then the address is refused, even with a
	// valid key, until the window passes.
	for i := 0; i < 3; i++ {
		expectStatus(t, g.activate(fmt.Sprintf("KEY-GUESS-%04d", i), "acme.com"), http.StatusNotFound, "license_not_found")
	}
	r := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	// Every endpoint: eight requests a minute in all.
	for i := 0; i < 3; i++ {
		expectStatus(t, do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil), http.StatusOK, "")
	}
	r = do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil)
	expectStatus(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("rate_limited without Retry-After")
	}
}

package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// POST {prefix}/status/refresh (SPEC section 7; issue 24), against the
// binary: the buyer renews support (the author's key file says so), the
// refresh sees it at once; a second one within refresh_cooldown is 429
// refresh_cooldown with Retry-After; the endpoint wants POST and a token.
func TestStatusRefreshSeesRenewal(t *testing.T) {
	g := newGateway(t, "127.0.0.1:1")
	g.vars["PRODUCT_OPTIONS"] = "refresh_cooldown 2m"
	g.start()
	a := g.activate("KEY-AAAA-0002", "bob.example.com") // support ended in 2000
	expectStatus(t, a, http.StatusCreated, "")
	auth := []string{"Authorization", "Bearer " + a.str("access_token")}
	refreshURL := g.url("/v1/licenses/status/refresh")

	st := do(t, http.MethodGet, g.url("/v1/licenses/status"), nil, auth...)
	if expectStatus(t, st, http.StatusOK, ""); st.json["license"].(map[string]any)["support_active"] != false {
		t.Fatalf("status before renewing: %s", st.body)
	}
	g.writeKeys(strings.Replace(demoKeys, "Bob,,2000-01-01T00:00:00Z", "Bob,,2099-01-01T00:00:00Z", 1))

	r := do(t, http.MethodPost, refreshURL, nil, auth...)
	expectStatus(t, r, http.StatusOK, "")
	if r.json["checked"] != true || r.json["license"].(map[string]any)["support_active"] != true {
		t.Fatalf("refresh after renewing: %s", r.body)
	}

	again := do(t, http.MethodPost, refreshURL, nil, auth...)
	expectStatus(t, again, http.StatusTooManyRequests, "refresh_cooldown")
	if s, err := strconv.Atoi(again.header.Get("Retry-After")); err != nil || s < 1 || s > 120 {
		t.Fatalf("Retry-After %q, want 1..120 s", again.header.Get("Retry-After"))
	}

	expectStatus(t, do(t, http.MethodPost, refreshURL, nil), http.StatusUnauthorized, "invalid_token")
	get := do(t, http.MethodGet, refreshURL, nil, auth...)
	if expectStatus(t, get, http.StatusMethodNotAllowed, "method_not_allowed"); get.header.Get("Allow") != http.MethodPost {
		t.Fatalf("Allow %q", get.header.Get("Allow"))
	}
	expectStatus(t, do(t, http.MethodPost, g.url("/v1/licenses/refresh"), nil, auth...), http.StatusNotFound, "not_found")
}

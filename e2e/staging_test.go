package e2e

import (
	"net/http"
	"testing"
)

// Hosting platforms' staging hosts against the binary (SPEC section 14;
// issue 25, acceptance 3): an activation on a listed platform host, or on
// the author's staging_hosts, is staging and free, before and after the
// production domain; the 4th over the cap of 3 is 409.
func TestPlatformStagingHosts(t *testing.T) {
	g := newGateway(t, "127.0.0.1:1")
	g.vars["PRODUCT_OPTIONS"] = "staging_hosts previews.acme.dev"
	g.start()
	const key = "KEY-AAAA-0004" // one production slot
	for _, host := range []string{"acme-staging.wpengine.com", "pr-12.previews.acme.dev"} {
		a := g.activate(key, host)
		expectStatus(t, a, http.StatusCreated, "")
		if a.str("license", "install_class") != "staging" || a.num("license", "activations_used") != 0 {
			t.Fatalf("%s before production: %s", host, a.body)
		}
	}
	prod := g.activate(key, "acme.com")
	expectStatus(t, prod, http.StatusCreated, "")
	if prod.str("license", "install_class") != "production" || prod.num("license", "activations_used") != 1 {
		t.Fatalf("production: %s", prod.body)
	}
	third := g.activate(key, "staging-acme.kinsta.cloud")
	expectStatus(t, third, http.StatusCreated, "")
	if third.str("license", "install_class") != "staging" || third.num("license", "activations_used") != 1 {
		t.Fatalf("a staging host after production: %s", third.body)
	}
	expectStatus(t, g.activate(key, "abc.ngrok-free.app"), http.StatusConflict, "activation_limit_reached")
	// the production slot is still the one: another production domain is refused
	expectStatus(t, g.activate(key, "other.com"), http.StatusConflict, "activation_limit_reached")
}

package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Issue 20, N2: a hostile or compromised store answering a redirect to a
// local URL (here the gateway's own admin /stop, and a recording server)
// is not followed: the activation answers 503 upstream_unavailable, the
// targets receive nothing, and the gateway keeps running.
func TestSourceRedirectsAreNotFollowed(t *testing.T) {
	var received atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	t.Cleanup(target.Close)
	var location atomic.Value
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location.Load().(string))
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(store.Close)
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = sourcesTemplate
	g.vars["SOURCES"] = strings.ReplaceAll(sourceConfig["lemonsqueezy"][0], "{{VENDOR}}", store.URL)
	g.vars["SOURCE_NAMES"] = "lemonsqueezy"
	g.vars["MAPPINGS"] = sourceConfig["lemonsqueezy"][1]
	g.start()

	for _, to := range []string{g.adminURL("/stop"), target.URL + "/collect"} {
		location.Store(to)
		r := g.activate(lemonKey, "buyer.com")
		expectStatus(t, r, http.StatusServiceUnavailable, "upstream_unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	}
	if n := received.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
	// Still running: the redirect to /stop was not followed.
	expectStatus(t, do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil), http.StatusOK, "")
	if !strings.Contains(g.logs.String(), "which is not followed") {
		t.Errorf("no log line says the redirect was refused:\n%s", g.logs.String())
	}
}

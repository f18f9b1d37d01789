package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A client's Connection header naming the gate's headers does not make
// reverse_proxy drop them: the backend still sees the gate's answer
// (issue 9, item 6).
func TestConnectionHeaderCannotHideLicenseHeaders(t *testing.T) {
	g, up := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	r := g.call(a.str("access_token"), "Connection", "X-License-Support-Active, x-license-type, X-License-Product, X-License-Class")
	expectStatus(t, r, http.StatusOK, "")
	h := up.lastHeader()
	for name, want := range map[string]string{
		"X-License-Support-Active": "true",
		"X-License-Type":           "regular",
		"X-License-Product":        "converter-pro",
		"X-License-Class":          "production",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream saw %s=%q, want %q", name, got, want)
		}
	}
}

// forward installation: the backend sees that one licence header and none
// of the others, neither the gate's nor a client's.
func TestGateForwardsOnlyWhatForwardNames(t *testing.T) {
	up := &recordingUpstream{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	g := newGateway(t, strings.TrimPrefix(srv.URL, "http://"))
	g.template = strings.Replace(caddyfileTemplate, "\t\t\tproducts converter-pro\n", "\t\t\tproducts converter-pro\n\t\t\tforward installation\n", 1)
	g.start()
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	expectStatus(t, g.call(a.str("access_token"), "X-License-Product", "forged", "X-License-Class", "production"), http.StatusOK, "")
	h := up.lastHeader()
	if got := h.Get("X-License-Installation"); got != a.str("installation_id") {
		t.Errorf("X-License-Installation %q", got)
	}
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-license-") && name != "X-License-Installation" {
			t.Errorf("upstream saw %s with forward installation", name)
		}
	}
}

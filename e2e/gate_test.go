package e2e

import (
	"net/http"
	"testing"
)

// A client's Connection header naming the gate's headers does not make
// reverse_proxy drop them: the backend still sees the gate's answer
// (issue 9, item 6).
func TestConnectionHeaderCannotHideLicenseHeaders(t *testing.T) {
	g, up := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	r := g.call(a.str("access_token"), "Connection", "X-License-Support-Active, x-license-type, X-License-Product")
	expectStatus(t, r, http.StatusOK, "")
	h := up.lastHeader()
	for name, want := range map[string]string{
		"X-License-Support-Active": "true",
		"X-License-Type":           "regular",
		"X-License-Product":        "converter-pro",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream saw %s=%q, want %q", name, got, want)
		}
	}
}

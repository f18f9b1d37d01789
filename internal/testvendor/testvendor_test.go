package testvendor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/licensegate/licensegate/internal/caddyrun"
)

// vendor fakes the test vendor's API; down makes it answer 500.
type vendor struct {
	hits atomic.Int64
	down atomic.Bool
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.hits.Add(1)
	switch {
	case v.down.Load():
		w.WriteHeader(http.StatusInternalServerError)
	case r.Header.Get("X-Api-Key") != "k-123" || r.PostFormValue("sku") != "W-1":
		w.WriteHeader(http.StatusBadRequest)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"valid": true}`))
	}
}

// config configures the test vendor as a source with rate, and a site
// at addr with the installer API.
func config(t *testing.T, vendorURL, addr, rate string) string {
	return fmt.Sprintf(`{
	admin off
	licensegate {
		storage embedded %s
		secret test-secret-0123456789abcdefghijklmnop
		source testvendor {
			api_key k-123
			base_url %s
			rate_limit %s
		}
		product widget {
			sources testvendor
			testvendor_sku W-1
		}
	}
}

http://%s {
	handle /v1/licenses/* {
		license_exchange
	}
}
`, filepath.Join(t.TempDir(), "lg.db"), vendorURL, rate, addr)
}

// A third-party source module plugs in from its own package: its block
// and mapping option are read from the Caddyfile, an activation through it
// succeeds, and the app wraps it like a built-in source: its rate budget
// refuses past the limit, and its breaker opens after failures.
func TestThirdPartySource(t *testing.T) {
	v := new(vendor)
	srv := httptest.NewServer(v)
	defer srv.Close()
	addr := caddyrun.FreeAddr(t)
	base := "http://" + addr + "/v1/licenses"

	caddyrun.Load(t, config(t, srv.URL, addr, "3/m"))
	for i := 1; i <= 3; i++ {
		status, body := caddyrun.Activate(t, base, fmt.Sprintf("TV-KEY-%d", i), "acme.com")
		lic, _ := body["license"].(map[string]any)
		if status != http.StatusCreated || lic["source"] != "testvendor" || lic["product"] != "widget" {
			t.Fatalf("activation %d through testvendor: %d %v", i, status, body)
		}
	}
	status, body := caddyrun.Activate(t, base, "TV-KEY-4", "acme.com")
	if status != http.StatusServiceUnavailable || caddyrun.Code(body) != "upstream_unavailable" {
		t.Fatalf("activation past a budget of 3/m: %d %v, want 503 upstream_unavailable", status, body)
	}
	if n := v.hits.Load(); n != 3 {
		t.Fatalf("the vendor was called %d times with a budget of 3/m", n)
	}

	// A reload with another budget is another source; the vendor fails.
	caddyrun.Load(t, config(t, srv.URL, addr, "1000/m"))
	v.down.Store(true)
	v.hits.Store(0)
	for i := 1; i <= 4; i++ {
		status, body := caddyrun.Activate(t, base, fmt.Sprintf("TV-DOWN-%d", i), "acme.com")
		if status != http.StatusServiceUnavailable || caddyrun.Code(body) != "upstream_unavailable" {
			t.Fatalf("activation %d with the vendor down: %d %v", i, status, body)
		}
	}
	// 5 consecutive failures (the default threshold) open the breaker:
	// the retried first questions reach the vendor, the later ones do not.
	if n := v.hits.Load(); n != 5 {
		t.Fatalf("the vendor was called %d times while failing, want 5 before the breaker opened", n)
	}
}

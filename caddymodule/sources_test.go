package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/licensegate/licensegate/internal/caddyrun"
)

// envatoFake answers every sale lookup for item 12345678 and records the
// Authorization header of each.
type envatoFake struct {
	mu    sync.Mutex
	auths []string
}

func (f *envatoFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"license":"Regular License","supported_until":null,"buyer":"b","item":{"id":12345678}}`))
}

func (f *envatoFake) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

// Rotating the {file.…} Envato token and reloading builds a source with
// the new token; a reload that changes nothing keeps the pooled source,
// with its spent budget.
func TestReloadUsesARotatedTokenFile(t *testing.T) {
	fake := new(envatoFake)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "envato-token")
	writeFile(t, tokenFile, "token-one\n")
	addr := caddyrun.FreeAddr(t)
	base := "http://" + addr + "/v1/licenses"
	config := fmt.Sprintf(`{
	admin off
	licensegate {
		storage embedded %s
		secret test-secret-0123456789abcdefghijklmnop
		source envato {
			token {file.%s}
			base_url %s
			rate_limit 2/m
		}
		product converter-pro {
			sources envato
			envato_item 12345678
		}
	}
}

http://%s {
	handle /v1/licenses/* {
		license_exchange
	}
}
`, filepath.Join(dir, "lg.db"), tokenFile, srv.URL, addr)
	activate := func(key string, want int) {
		t.Helper()
		if status, body := caddyrun.Activate(t, base, key, "acme.com"); status != want {
			t.Fatalf("activating %s: %d %v, want %d", key, status, body, want)
		}
	}

	caddyrun.Load(t, config)
	activate("11111111-1111-4111-8111-000000000001", http.StatusCreated)
	writeFile(t, tokenFile, "token-two\n")
	caddyrun.Load(t, config) // the same text: only the file changed
	activate("11111111-1111-4111-8111-000000000002", http.StatusCreated)
	if got := fake.calls(); len(got) != 2 || got[0] != "Bearer token-one" || got[1] != "Bearer token-two" {
		t.Fatalf("Authorization headers %q, want token-one then the rotated token-two", got)
	}

	// Unchanged: the same source, whose budget of 2/m now has one call
	// left; the call after it is refused without reaching Envato.
	caddyrun.Load(t, config)
	activate("11111111-1111-4111-8111-000000000003", http.StatusCreated)
	activate("11111111-1111-4111-8111-000000000004", http.StatusServiceUnavailable)
	if got := fake.calls(); len(got) != 3 || got[2] != "Bearer token-two" {
		t.Fatalf("Authorization headers %q, want a third call with token-two and no fourth", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

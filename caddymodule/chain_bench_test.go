package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/licensegate/licensegate/caddymodule"
)

// chainCaddyfile has the routes of Caddyfile.example, with `respond` as
// the stub next handler in place of reverse_proxy: /plain without the
// gate, /convert with it (all six headers), /installation with
// `forward installation`.
const chainCaddyfile = `{
	admin off
	persist_config off
	storage file_system {{DIR}}/caddy
	log {
		output discard
	}
	licensegate {
		storage embedded {{DIR}}/lg.db
		source static {
			file {{DIR}}/keys.csv
		}
		product converter-pro {
			sources static
		}
	}
}

http://127.0.0.1:{{PORT}} {
	bind 127.0.0.1
	handle /v1/licenses/* {
		license_exchange
	}
	handle /convert* {
		license_gate {
			products converter-pro
		}
		respond "ok" 200
	}
	handle /installation* {
		license_gate {
			products converter-pro
			forward installation
		}
		respond "ok" 200
	}
	handle /plain* {
		respond "ok" 200
	}
	handle {
		respond "not found" 404
	}
}
`

// BenchmarkHandlerChain is a gated request through Caddy's whole HTTP
// handler chain, in process and without a socket: caddyhttp.Server's
// ServeHTTP (request preparation, replacer, route matching, handle),
// license_gate with a real token on the embedded store, and `respond` as
// the next handler. "no gate" is the same server and routes without the
// gate; the difference of the two is the gate's cost in the chain
// (BenchmarkGateServeHTTP measures the gate alone).
func BenchmarkHandlerChain(b *testing.B) {
	srv, token := loadChain(b)
	for _, c := range []struct{ name, path string }{
		{"no gate", "/plain"},
		{"license_gate", "/convert"},
		{"license_gate forward installation", "/installation"},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, c.path, nil)
			r.Host = "127.0.0.1"
			hdr := r.Header
			bearer := []string{"Bearer " + token}
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(hdr) // the gate edits the request's headers in place
				hdr["Authorization"] = bearer
				clear(w.h)
				w.code = 0
				srv.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// loadChain runs chainCaddyfile in this process and activates a key
// through its exchange, returning the HTTP server and the access token.
func loadChain(b *testing.B) (*caddyhttp.Server, string) {
	b.Helper()
	dir := b.TempDir()
	b.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	b.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	keys := "key,product,type,licensed_to,expires_at,support_until,activations,status\n" +
		"CHAIN-0001,converter-pro,regular,Bench,,2099-01-01T00:00:00Z,,active\n"
	if err := os.WriteFile(filepath.Join(dir, "keys.csv"), []byte(keys), 0o600); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", fmt.Sprint(port)).Replace(chainCaddyfile)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		b.Fatal(err)
	}
	servers := app.(*caddyhttp.App).Servers
	if len(servers) != 1 {
		b.Fatalf("%d HTTP servers, want 1", len(servers))
	}
	var srv *caddyhttp.Server
	for _, s := range servers {
		srv = s
	}

	form := url.Values{"license_key": {"CHAIN-0001"}, "domain": {"acme.com"}}
	r := httptest.NewRequest(http.MethodPost, "/v1/licenses/activate", strings.NewReader(form.Encode()))
	r.Host = "127.0.0.1"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var act struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &act); err != nil || act.AccessToken == "" {
		b.Fatalf("activation: %d %s", w.Code, w.Body)
	}
	return srv, act.AccessToken
}

// discardWriter is a ResponseWriter that keeps the status and drops the
// body, reused across iterations so the benchmark counts Caddy's
// allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(p), nil
}

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

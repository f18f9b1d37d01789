// Package caddyrun runs a Caddyfile in-process for tests: adapted and
// loaded with caddy.Load, as a reload would, and stopped at the test's
// end. Caddy runs one configuration per process, so tests using it must
// not run in parallel.
package caddyrun

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/licensegate/licensegate/caddymodule"
)

// Load adapts caddyfile and loads it, replacing the running configuration
// even when it is the same (a reload after a secret file changed); the
// first Load of a test stops Caddy at its end.
func Load(t *testing.T, caddyfile string) {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	for _, w := range warnings {
		t.Logf("Caddyfile: %s", w.String())
	}
	if !stopping[t] {
		// Caddy keeps an autosave of the config in its config directory.
		t.Setenv("XDG_CONFIG_HOME", t.TempDir())
		t.Setenv("XDG_DATA_HOME", t.TempDir())
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the config: %v", err)
	}
	if stopping[t] { // a reload: the replaced sites' sockets close a moment later
		for _, port := range listenPorts(cfg) {
			AwaitOneListener(t, port)
		}
	}
	if !stopping[t] {
		stopping[t] = true
		t.Cleanup(func() {
			delete(stopping, t)
			_ = caddy.Stop()
		})
	}
}

// listenPorts returns the ports cfg's HTTP servers listen on.
func listenPorts(cfg []byte) []int {
	var c struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if json.Unmarshal(cfg, &c) != nil {
		return nil
	}
	var ports []int
	for _, srv := range c.Apps.HTTP.Servers {
		for _, l := range srv.Listen {
			_, port, err := net.SplitHostPort(l)
			if n, perr := strconv.Atoi(port); err == nil && perr == nil {
				ports = append(ports, n)
			}
		}
	}
	return ports
}

// stopping remembers the tests that will stop Caddy (tests here are not
// parallel).
var stopping = map[*testing.T]bool{}

// FreeAddr returns a loopback address nothing listens on, for a site.
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Activate posts an installer's activation to the license_exchange at
// base, answering its status and decoded body.
func Activate(t *testing.T, base, key, domain string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"license_key": {key}, "domain": {domain}}
	// A new connection each time: one kept alive from before a reload
	// would be closed by the old server under the request.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(base+"/activate", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("activating: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("activation answered %d %s: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, body
}

// Code returns a problem's code member, for messages.
func Code(body map[string]any) string { return fmt.Sprint(body["code"]) }

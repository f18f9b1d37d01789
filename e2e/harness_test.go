// Package e2e drives the real licensegate binary, built once per test run,
// over real HTTP from Caddyfiles.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/browsertest"

	"github.com/licensegate/licensegate/internal/caddyrun"
)

// binary is the licensegate binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "licensegate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "licensegate")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	build := exec.Command("go", "build", "-o", binary, "./cmd/licensegate")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building licensegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	browsertest.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testSecret is the master secret the test gateways use, so tests can open
// the store themselves while the gateway is stopped.
const testSecret = "e2e-test-secret-0123456789abcdefghijklmnopqrstuvwxyz"

// demoKeys is the static source's key file for most tests.
const demoKeys = `key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-AAAA-0001,converter-pro,regular,Alice,,2099-01-01T00:00:00Z,,active
KEY-AAAA-0002,converter-pro,extended,Bob,,2000-01-01T00:00:00Z,2,active
KEY-AAAA-0003,converter-pro,regular,Carol,,,,revoked
KEY-AAAA-0004,converter-pro,regular,Dave,,2099-01-01T00:00:00Z,,active
KEY-AAAA-0005,converter-pro,regular,Erin,,2099-01-01T00:00:00Z,,active
KEY-AAAA-0006,converter-pro,developer,Frank,,2099-01-01T00:00:00Z,,active
KEY-BBBB-0001,other-product,regular,Grace,,2099-01-01T00:00:00Z,,active
`

// caddyfileTemplate is a gateway with the exchange and a gated route in
// front of an upstream; {{...}} are filled per test.
const caddyfileTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		storage embedded {{DIR}}/licensegate.db
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		source static {
			file {{DIR}}/keys.csv
		}
		product converter-pro {
			sources static
			activations {{ACTIVATIONS}}
			move_cooldown 1h
			{{PRODUCT_OPTIONS}}
		}
		product other-product {
			sources static
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange {{EXCHANGE}}
	}
	handle /whoami {
		license_gate converter-pro other-product
		respond "{license.id} {license.class} {license.stale}"
	}
	handle /convert* {
		license_gate {
			products converter-pro
		}
		reverse_proxy {{UPSTREAM}}
	}
}
`

// gateway is one running licensegate process.
type gateway struct {
	t        *testing.T
	dir      string
	port     int
	admin    int
	upstream string
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     *syncBuffer
	vars     map[string]string
	template string
	extraEnv []string // more environment for the process (OTEL_* in the trace test)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Ports for what the tests start (the binary, its admin listener, an
// upstream) come from below the kernel's ephemeral range (Linux's default
// is 32768-60999). A port from a :0 listener is one the kernel may hand
// to any outgoing connection (a Redis client, an HTTP client of another
// test process) between the hand-out and the binary's bind: a start
// failed so, "listen tcp :40007: bind: address already in use". Below the
// range only a listener that asks for the port can take it; a counter
// from a random start keeps this process's ports distinct, and the probe
// binds every interface, as Caddy does for http://127.0.0.1:<port>.
const (
	portLow  = 20000
	portSpan = 12000
)

var portCounter atomic.Int64

func freePort(t *testing.T) int {
	t.Helper()
	portCounter.CompareAndSwap(0, 1+rand.Int64N(portSpan))
	for range portSpan {
		port := portLow + int(portCounter.Add(1)%portSpan)
		if l, err := net.Listen("tcp", fmt.Sprintf(":%d", port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// newGateway prepares a gateway directory with the demo keys; start it
// with start.
func newGateway(t *testing.T, upstream string) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: t.TempDir(), port: freePort(t), admin: freePort(t), upstream: upstream,
		vars: map[string]string{"ACTIVATIONS": "1", "EXCHANGE": "", "PRODUCT_OPTIONS": "", "SOURCES": ""}, template: caddyfileTemplate}
	if err := os.WriteFile(filepath.Join(g.dir, "keys.csv"), []byte(demoKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) caddyfile() string {
	pairs := []string{"{{ADMIN}}", fmt.Sprint(g.admin), "{{PORT}}", fmt.Sprint(g.port),
		"{{DIR}}", g.dir, "{{UPSTREAM}}", g.upstream}
	for k, v := range g.vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	return withDebug(strings.NewReplacer(pairs...).Replace(g.template))
}

func (g *gateway) env() []string {
	return append(append(os.Environ(),
		"LG_E2E_SECRET="+testSecret,
		"XDG_DATA_HOME="+filepath.Join(g.dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(g.dir, "config"),
		"HOME="+g.dir,
	), g.extraEnv...)
}

// start runs the binary and waits until the site answers.
func (g *gateway) start() { g.run(http.StatusOK) }

// startUnready runs the binary and waits until the site answers at all
// (503 included: its store may be down on purpose).
func (g *gateway) startUnready() { g.run(0) }

// run starts the process and waits for the JWKS endpoint to answer with
// want (any status when 0).
func (g *gateway) run(want int) {
	g.t.Helper()
	cfg := filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(g.caddyfile()), 0o600); err != nil {
		g.t.Fatal(err)
	}
	g.launch(cfg, "")
	g.await(g.url("/v1/licenses/jwks.json"), want)
}

// launch starts the binary on the Caddyfile at cfg, in dir ("": the
// test's own), its output in g.logs.
func (g *gateway) launch(cfg, dir string) {
	g.t.Helper()
	g.logs = &syncBuffer{}
	g.cmd = exec.Command(binary, "run", "--config", cfg, "--adapter", "caddyfile")
	g.cmd.Dir = dir
	g.cmd.Env = g.env()
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(g.cmd, g.exited)
}

// await polls url until it answers with want (any status when 0), failing
// the test if the process exits or 30 s pass first.
func (g *gateway) await(url string, want int) {
	t := g.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.exited:
			t.Fatalf("licensegate exited during start:\n%s", g.logs.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if want == 0 || resp.StatusCode == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("licensegate did not start:\n%s", g.logs.String())
}

// stop interrupts the process and waits for it to exit.
func (g *gateway) stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	// A connection the client dialled for a request that another one then
	// served sits idle before its first request, and net/http's Shutdown
	// waits 5 s for such a connection: close them so the stop is quick.
	http.DefaultClient.CloseIdleConnections()
	_ = g.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	g.cmd = nil
	scanLogs(g.t, g.logs.String())
	if g.t.Failed() {
		g.t.Logf("licensegate logs:\n%s", g.logs.String())
	}
}

func (g *gateway) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", g.port, path) }

func (g *gateway) adminURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", g.admin, path)
}

// reload loads the gateway's (possibly changed) Caddyfile through the admin
// API, as `licensegate reload` does.
func (g *gateway) reload() {
	t := g.t
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.adminURL("/load"), strings.NewReader(g.caddyfile()))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate") // reload even when unchanged
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("reload: %d %s", resp.StatusCode, b)
	}
	caddyrun.AwaitOneListener(g.t, g.port)
	// The old config's server closes its idle keep-alive connections; a
	// client reusing one would see a reset that is no fault of the gateway.
	http.DefaultClient.CloseIdleConnections()
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) str(path ...string) string {
	var v any = r.json
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (r response) num(path ...string) float64 {
	var v any = r.json
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = m[p]
	}
	f, _ := v.(float64)
	return f
}

// do sends a request; body may be nil, a string (form) or a map (JSON).
func do(t *testing.T, method, url string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/x-www-form-urlencoded"
	default:
		raw, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(raw), "application/json"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	_ = json.Unmarshal(raw, &r.json)
	noteSecrets(body)
	noteSecrets(r.json)
	if auth := req.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		noteSecret(strings.TrimPrefix(auth, "Bearer "))
	}
	return r
}

func (g *gateway) activate(key, domain string, headers ...string) response {
	g.t.Helper()
	return do(g.t, http.MethodPost, g.url("/v1/licenses/activate"), map[string]string{"license_key": key, "domain": domain}, headers...)
}

func (g *gateway) call(token string, headers ...string) response {
	g.t.Helper()
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return do(g.t, http.MethodGet, g.url("/convert"), nil, headers...)
}

func expectStatus(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if code != "" {
		if got := r.str("code"); got != code {
			t.Fatalf("code %q, want %q; body %s", got, code, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("Content-Type %q, want application/problem+json", ct)
		}
	}
}

// recordingUpstream is the first-party API behind the gate: it records the
// headers of the last request.
type recordingUpstream struct {
	mu   sync.Mutex
	last http.Header
	hits int
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.last = r.Header.Clone()
	u.hits++
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"converted":true}`)
}

func (u *recordingUpstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goroutines reads Caddy's pprof goroutine profile from the admin
// listener and returns the total and the number whose stack runs our code.
// Only ours are asserted: Caddy's reverse proxy keeps idle upstream
// connections of an old config open until they time out.
func (g *gateway) goroutines() (total, ours int) {
	g.t.Helper()
	resp, err := http.Get(g.adminURL("/debug/pprof/goroutine?debug=1"))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	dump, _ := io.ReadAll(resp.Body)
	// "goroutine profile: total 42", then blocks "N @ pcs\n#\tframe..."
	blocks := strings.Split(string(dump), "\n\n")
	head := strings.SplitN(blocks[0], "\n", 2)[0]
	total, err = strconv.Atoi(strings.TrimSpace(head[strings.LastIndex(head, " ")+1:]))
	if err != nil {
		g.t.Fatalf("parsing %q: %v", head, err)
	}
	for _, b := range blocks {
		b = strings.TrimPrefix(b, blocks[0][:len(head)])
		b = strings.TrimSpace(b)
		if !strings.Contains(b, "github.com/licensegate/licensegate/") {
			continue
		}
		if n, err := strconv.Atoi(strings.Fields(b)[0]); err == nil {
			ours += n
		}
	}
	return total, ours
}

// openHandles counts the gateway process's file descriptors on path.
func (g *gateway) openHandles(path string) int {
	g.t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", g.cmd.Process.Pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		g.t.Skipf("cannot read %s: %v", dir, err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

// settledGoroutines polls until our goroutine count stops changing (the
// old config stops just after the new one starts).
func (g *gateway) settledGoroutines() (total, ours int) {
	total, ours = g.goroutines()
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		t2, o2 := g.goroutines()
		if o2 == ours && i >= 3 {
			return t2, o2
		}
		total, ours = t2, o2
	}
	return total, ours
}

func TestReloadKeepsTokensAndLeaksNothing(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	token := a.str("access_token")
	expectStatus(t, g.call(token), http.StatusOK, "")
	http.DefaultClient.CloseIdleConnections()

	dbPath := filepath.Join(g.dir, "licensegate.db")
	if n := g.openHandles(dbPath); n != 1 {
		t.Fatalf("%d open handles on the store before reloads, want 1", n)
	}
	g.reload() // warm up: the first reload may start lazily created workers
	baseTotal, base := g.settledGoroutines()

	const reloads = 6
	for i := 0; i < reloads; i++ {
		g.reload()
		expectStatus(t, g.call(token), http.StatusOK, "")
	}
	// A changed config: two production slots now.
	g.vars["ACTIVATIONS"] = "2"
	g.reload()
	expectStatus(t, g.call(token), http.StatusOK, "")
	expectStatus(t, g.activate("KEY-AAAA-0001", "second.com"), http.StatusCreated, "")
	http.DefaultClient.CloseIdleConnections()

	afterTotal, after := g.settledGoroutines()
	t.Logf("goroutines running licensegate code: %d before %d reloads, %d after (all goroutines: %d, %d)", base, reloads+1, after, baseTotal, afterTotal)
	if base == 0 {
		t.Fatal("no licensegate goroutine found: the profile parser is broken")
	}
	if after != base {
		if resp, err := http.Get(g.adminURL("/debug/pprof/goroutine?debug=1")); err == nil {
			dump, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("goroutines:\n%s", dump)
		}
		t.Fatalf("licensegate goroutines went from %d to %d over %d reloads", base, after, reloads+1)
	}
	if n := g.openHandles(dbPath); n != 1 {
		t.Fatalf("%d open handles on the store after reloads, want 1", n)
	}
	// The refresh token from before the reloads still rotates.
	r := do(t, http.MethodPost, g.url("/v1/licenses/token"), "grant_type=refresh_token&refresh_token="+a.str("refresh_token"))
	expectStatus(t, r, http.StatusOK, "")
}

// A reload is no way to a fresh rate budget: a client that spent half its
// rate_limit before a reload has the other half after it, not a new one.
// A changed limit is a new limiter (its settings are its pool key).
func TestReloadKeepsRateLimitBudget(t *testing.T) {
	g := newGateway(t, "127.0.0.1:1")
	g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 10/h\n\t\t}"
	g.start()
	// From 127.0.0.2: the harness's own readiness probes (127.0.0.1) spend
	// nothing of this client's budget.
	client := fromAddress(t, "127.0.0.2")
	jwks := g.url("/v1/licenses/jwks.json")
	spend := func(n int) (admitted int) {
		for i := 0; i < n; i++ {
			if status := getStatus(t, client, jwks); status == http.StatusOK {
				admitted++
			} else if status != http.StatusTooManyRequests {
				t.Fatalf("GET jwks.json: %d", status)
			}
		}
		return admitted
	}
	if got := spend(5); got != 5 {
		t.Fatalf("%d of the first 5 requests admitted, want 5", got)
	}
	g.reload()
	client.CloseIdleConnections()
	if got := spend(10); got != 5 {
		t.Fatalf("after the reload %d of 10 requests admitted, want the 5 left of the budget", got)
	}
	g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 12/h\n\t\t}"
	g.reload()
	client.CloseIdleConnections()
	if got := spend(15); got != 12 {
		t.Fatalf("with a changed limit %d of 15 requests admitted, want a fresh 12", got)
	}
}

// fromAddress is an HTTP client whose connections come from a loopback
// address of its own (Linux answers all of 127/8).
func fromAddress(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// getStatus GETs url and returns the status, the body read and closed.
func getStatus(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

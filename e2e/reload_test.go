package e2e

import (
	"fmt"
	"io"
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

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/upstreams/envato/envatotest"
)

// TestPortalPagesLoad measures the portal's pages (SPEC section 11,
// "pages"): 50 signed-in buyers at once, each loading their licences and
// a licence's page in a loop, against the binary on each store. It is a
// benchmark, run by `bench/run.sh portal`: it reports latencies and
// asserts only that every page was served. Settings: PORTAL_USERS (50),
// PORTAL_DURATION (15s), STORES ("embedded redis").
func TestPortalPagesLoad(t *testing.T) {
	if os.Getenv("LICENSEGATE_BENCH") != "portal" {
		t.Skip("a benchmark: run it with bench/run.sh portal (LICENSEGATE_BENCH=portal)")
	}
	users := envInt("PORTAL_USERS", 50)
	duration, err := time.ParseDuration(envOr("PORTAL_DURATION", "15s"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("| store | page | requests | req/s | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, storage := range strings.Fields(envOr("STORES", "embedded redis")) {
		t.Run(storage, func(t *testing.T) { portalLoad(t, storage, users, duration) })
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(envOr(name, fmt.Sprint(def)), &n); err != nil || n <= 0 {
		return def
	}
	return n
}

// loadCode is the n-th buyer's i-th purchase code.
func loadCode(n, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, i) }

func portalLoad(t *testing.T, storage string, users int, duration time.Duration) {
	env := envatotest.New(t, portalClientID, portalClientSecret)
	codes := map[string]bool{}
	for n := range users {
		b := envatotest.Buyer{Username: fmt.Sprintf("buyer%03d", n)}
		for i := range 2 {
			code := loadCode(n, i)
			codes[code] = true
			b.Purchases = append(b.Purchases, envatotest.Purchase{Code: code, ItemID: portalItem, ItemName: "Converter Pro",
				License: "Regular License", SupportedUntil: "2099-03-09T01:54:28+11:00", SoldAt: "2020-01-01T00:00:00+00:00"})
		}
		env.AddBuyer(b)
	}
	sales := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !codes[r.URL.Query().Get("code")] {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":404,"description":"No sale belonging to the current user found with that code"}`)
			return
		}
		_, _ = fmt.Fprintf(w, `{"amount":"19.84","sold_at":"2020-01-01T00:00:00+00:00","license":"Regular License","support_amount":"0.00",
			"supported_until":"2099-03-09T01:54:28+11:00","item":{"id":%d,"name":"Converter Pro"},"buyer":"b","purchase_count":1}`, portalItem)
	}))
	t.Cleanup(sales.Close)
	g := newGateway(t, "127.0.0.1:1")
	g.template = strings.Replace(portalTemplate, "license_exchange", "license_exchange {\n\t\t\trate_limit 1000000/m\n\t\t\tfailed_limit 1000000/m\n\t\t}", 1)
	g.template = strings.Replace(g.template, "base_url {{SALES}}", "base_url {{SALES}}\n\t\t\trate_limit 100000/m", 1)
	g.template = strings.Replace(g.template, "license_portal {", "license_portal {\n\t\t\tsign_in_limit 100000/m", 1)
	g.vars["SALES"], g.vars["ENVATO"] = sales.URL, env.URL
	g.vars["STORAGE"] = "storage embedded " + filepath.Join(g.dir, "licensegate.db")
	if storage == "redis" {
		g.vars["STORAGE"] = "storage redis redis://" + redistest.NewServer(t).Addr() + "/0"
	}
	g.extraEnv = append(g.extraEnv, "LG_E2E_ENVATO_CLIENT_SECRET="+portalClientSecret)
	env.RedirectURI = g.url("/account/auth/envato/callback")
	g.start()

	type buyer struct {
		client *http.Client
		lic    string
	}
	var buyers []buyer
	for n := range users {
		var lic string
		for i := range 2 {
			a := g.activate(loadCode(n, i), fmt.Sprintf("b%03d-%d.example.com", n, i))
			expectStatus(t, a, http.StatusCreated, "")
			lic = a.str("license", "id")
		}
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		env.SignInAs(fmt.Sprintf("buyer%03d", n))
		resp, err := c.Get(g.url("/account/auth/envato"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Count(string(body), "/account/licenses/lic_") != 2 {
			t.Fatalf("buyer %d's sign-in: %d", n, resp.StatusCode)
		}
		buyers = append(buyers, buyer{c, lic})
	}

	pages := map[string]func(b buyer) string{
		"licences":  func(buyer) string { return g.url("/account/") },
		"a licence": func(b buyer) string { return g.url("/account/licenses/" + b.lic) },
	}
	var mu sync.Mutex
	took := map[string][]time.Duration{}
	var failures int
	stop := time.Now().Add(duration)
	var wg sync.WaitGroup
	for _, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				for name, url := range pages {
					start := time.Now()
					resp, err := b.client.Get(url(b))
					ok := err == nil && resp.StatusCode == 200
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					d := time.Since(start)
					mu.Lock()
					took[name] = append(took[name], d)
					if !ok {
						failures++
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if failures > 0 {
		t.Errorf("%d page loads failed", failures)
	}
	for _, name := range []string{"licences", "a licence"} {
		ds := took[name]
		slices.Sort(ds)
		q := func(p float64) string { return ms(ds[min(len(ds)-1, int(p*float64(len(ds))))]) }
		fmt.Printf("| %s | %s | %d | %.0f | %s | %s | %s | %s |\n", storage, name, len(ds),
			float64(len(ds))/duration.Seconds(), q(0.50), q(0.90), q(0.99), ms(ds[len(ds)-1]))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

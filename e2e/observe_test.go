package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// scrape reads Caddy's /metrics on the admin endpoint into series ->
// value, keeping only licensegate_* series.
func (g *gateway) scrape() map[string]float64 {
	g.t.Helper()
	r := do(g.t, http.MethodGet, g.adminURL("/metrics"), nil)
	if r.status != http.StatusOK {
		g.t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "licensegate_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			g.t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsOnCaddysEndpoint (issue 13, acceptance 1): activations,
// refused gate calls and an upstream outage show on Caddy's /metrics with
// their counts, under bounded labels.
func TestMetricsOnCaddysEndpoint(t *testing.T) {
	g, v := startWithSources(t, "envato")
	ok := g.activate(envatoKey, "acme.com")
	expectStatus(t, ok, http.StatusCreated, "")
	token := ok.str("access_token")
	for range 2 {
		expectStatus(t, g.call(token), http.StatusOK, "")
	}
	for range 3 {
		expectStatus(t, g.call("not-a-token"), http.StatusUnauthorized, "invalid_token")
	}
	expectStatus(t, g.call(""), http.StatusUnauthorized, "invalid_token")
	v.set("envato", "5xx")
	expectStatus(t, g.activate("22222222-2222-4222-8222-222222222222", "acme.com"), http.StatusServiceUnavailable, "upstream_unavailable")
	failed := v.count("envato") - 1

	if !strings.Contains(g.logs.String(), `"level":"debug"`) {
		t.Error("the gateway does not log at debug level: the log scan would miss lines")
	}
	m := g.scrape()
	want := map[string]float64{
		`licensegate_gate_decisions_total{code="admitted",product="converter-pro"}`:         2,
		`licensegate_gate_decisions_total{code="invalid_token",product="none"}`:             4,
		`licensegate_exchanges_total{endpoint="activate",outcome="ok"}`:                     1,
		`licensegate_exchanges_total{endpoint="activate",outcome="upstream_unavailable"}`:   1,
		`licensegate_exchange_duration_seconds_count{endpoint="activate",outcome="ok"}`:     1,
		`licensegate_upstream_calls_total{outcome="valid",source="envato"}`:                 1,
		`licensegate_upstream_calls_total{outcome="unknown",source="envato"}`:               float64(failed),
		`licensegate_upstream_call_duration_seconds_count{outcome="valid",source="envato"}`: 1,
		`licensegate_upstream_breaker_state{source="envato"}`:                               0,
	}
	for series, n := range want {
		if got, found := m[series]; !found || got != n {
			t.Errorf("%s = %v (present %v), want %v", series, got, found, n)
		}
	}
	if h, mi := m["licensegate_status_cache_hits_total"], m["licensegate_status_cache_misses_total"]; h+mi != 2 {
		t.Errorf("status cache hits %v + misses %v, want 2 look-ups", h, mi)
	}
	for series := range m {
		for _, bad := range []string{"license=", "installation=", "domain=", "key=", "acme.com", envatoKey} {
			if strings.Contains(series, bad) {
				t.Errorf("unbounded label in %s", series)
			}
		}
	}
	if t.Failed() {
		t.Logf("licensegate series:\n%v", m)
	}

	// A reload registers the metrics on the new config's registry once,
	// and the counts carry over.
	g.reload()
	expectStatus(t, g.call(token), http.StatusOK, "")
	after := g.scrape()
	if got := after[`licensegate_gate_decisions_total{code="admitted",product="converter-pro"}`]; got != 3 {
		t.Errorf("admitted after a reload = %v, want 3", got)
	}
	if got := after[`licensegate_upstream_calls_total{outcome="valid",source="envato"}`]; got != 1 {
		t.Errorf("valid calls after a reload = %v, want 1", got)
	}
}

// TestHealth (issue 13, acceptance 4): 200 while serving, with each
// source's breaker; 503 naming the store when it is gone.
func TestHealth(t *testing.T) {
	g, _ := startWithSources(t, "envato")
	r := do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil)
	if r.status != http.StatusOK || r.json["serving"] != true || r.str("sources", "envato") != "closed" {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	for _, field := range []string{"recheck", "webhook_pending"} {
		if _, ok := r.json[field]; !ok {
			t.Fatalf("health lacks %s: %s", field, r.body)
		}
	}
}

// TestHealthWithRedisStopped (issue 13, acceptance 4): with the store
// stopped the health check answers 503 and names the store; the gate's
// stale answers and the store errors are counted.
func TestHealthWithRedisStopped(t *testing.T) {
	srv := redistest.NewDurableServer(t)
	g := startOnRedis(t, srv.Addr(), map[string]string{"CACHE_TTL": "1s", "STALE": "10m"})
	act := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, act, http.StatusCreated, "")
	r := do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil)
	if r.status != http.StatusOK || r.json["serving"] != true {
		t.Fatalf("health with Redis up: %d %s", r.status, r.body)
	}
	expectStatus(t, g.call(act.str("access_token")), http.StatusOK, "")

	srv.Stop()
	r = do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"failing":["store"]`) {
		t.Fatalf("health with Redis stopped: %d %s", r.status, r.body)
	}
	time.Sleep(2100 * time.Millisecond) // past the status cache's 2*TTL
	expectStatus(t, g.call(act.str("access_token")), http.StatusOK, "")
	m := g.scrape()
	if m["licensegate_status_cache_stale_total"] < 1 {
		t.Errorf("no stale serve counted: %v", m)
	}
	if m[`licensegate_gate_decisions_total{code="admitted",product="converter-pro"}`] != 2 {
		t.Errorf("gate decisions: %v", m)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "health back to 200 with Redis", func() bool {
		return do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil).status == http.StatusOK
	})
}

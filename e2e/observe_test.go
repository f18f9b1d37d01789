package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	// The outbox is in use with or without a webhook endpoint: its count
	// is a number whenever the store answers.
	if _, isNum := r.json["webhook_pending"].(float64); !isNum {
		t.Errorf("health webhook_pending = %v, want a number: %s", r.json["webhook_pending"], r.body)
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
	// An activation needs the store: refused, and counted as a store error.
	expectStatus(t, g.activate("KEY-AAAA-0004", "acme.com"), http.StatusServiceUnavailable, "store_unavailable")
	m = g.scrape()
	if got := m[`licensegate_store_errors_total{endpoint="activate"}`]; got != 1 {
		t.Errorf("store errors of activate = %v, want 1: %v", got, m)
	}
	if _, found := m["licensegate_webhook_pending"]; found {
		t.Errorf("webhook_pending reported with the store down: %v", m)
	}
	if r := do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil); !strings.Contains(string(r.body), `"webhook_pending":null`) {
		t.Errorf("health webhook_pending with the store down, want null: %s", r.body)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "health back to 200 with Redis", func() bool {
		return do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil).status == http.StatusOK
	})
}

// TestMetricsForRecheckAndWebhooks (issue 13, acceptance 1): a recheck
// round, webhook deliveries and a spent rate budget show on Caddy's
// /metrics with their counts; the backlog gauges are there, the webhook
// backlog back at 0 once the receiver has everything.
func TestMetricsForRecheckAndWebhooks(t *testing.T) {
	sink := &hookSink{t: t, ids: map[string]int{}}
	hooks := httptest.NewServer(sink)
	t.Cleanup(hooks.Close)
	g, v := withSources(t, "envato")
	g.vars["MAPPINGS"] += "\n\t\t\trecheck every 1h mode manual"
	// A budget of three vendor calls an hour: enough for the activation
	// and the recheck (which leaves a call for activations); then it runs
	// out and a call is refused at once.
	g.vars["SOURCES"] = strings.Replace(g.vars["SOURCES"], "timeout 1s", "timeout 1s\n\t\t\trate_limit 3/1h", 1)
	block := "\t\twebhook " + hooks.URL + " {\n\t\t\tsecret " + e2eWebhookSecret + "\n\t\t\ttimeout 2s\n\t\t}\n\t\tproduct converter-pro {"
	g.template = strings.Replace(g.template, "\t\tproduct converter-pro {", block, 1)
	g.start()

	ok := g.activate(envatoKey, "acme.com")
	expectStatus(t, ok, http.StatusCreated, "")
	lic := ok.str("license", "id")
	r := g.adminCall(http.MethodPost, "licenses/"+lic+"/recheck", map[string]string{"reason": "e2e"})
	expectAdmin(t, r, http.StatusOK)
	if got := r.str("outcome", "outcome"); got != "valid" {
		t.Fatalf("recheck outcome %q, want valid: %s", got, r.body)
	}
	// The vendor fails from now on; activations of new keys spend the
	// rest of the budget until one is refused without a call.
	v.set("envato", "5xx")
	refused := false
	for i := range 4 {
		calls := v.count("envato")
		key := fmt.Sprintf("2222222%d-2222-4222-8222-222222222222", i)
		expectStatus(t, g.activate(key, "acme.com"), http.StatusServiceUnavailable, "upstream_unavailable")
		if v.count("envato") == calls {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("the rate budget never ran out")
	}

	// Every event out: the receiver has them all and the outbox is empty.
	var m map[string]float64
	waitFor(t, 15*time.Second, "webhook deliveries settled", func() bool {
		m = g.scrape()
		p, found := m["licensegate_webhook_pending"]
		return sink.distinct() > 0 && found && p == 0
	})
	want := map[string]float64{
		`licensegate_recheck_outcomes_total{outcome="valid",source="envato"}`: 1,
		`licensegate_webhook_deliveries_total{outcome="delivered"}`:           float64(sink.distinct()),
		`licensegate_recheck_due{source="all"}`:                               0,
		`licensegate_recheck_backlog{source="all"}`:                           1, // the one licence, scheduled
		`licensegate_recheck_lag_seconds{source="all"}`:                       0,
		`licensegate_webhook_pending`:                                         0,
	}
	for series, n := range want {
		if got, found := m[series]; !found || got != n {
			t.Errorf("%s = %v (present %v), want %v", series, got, found, n)
		}
	}
	if got := m[`licensegate_upstream_budget_waits_total{outcome="refused",source="envato"}`]; got < 1 {
		t.Errorf("budget refusals counted %v, want at least the one seen", got)
	}
	for series := range m {
		if strings.HasPrefix(series, "licensegate_webhook_deliveries_total") && !strings.Contains(series, `outcome="delivered"`) {
			t.Errorf("a delivery not delivered: %s", series)
		}
		for _, bad := range []string{"license=", "installation=", "domain=", "key=", "url=", "acme.com", envatoKey, lic, hooks.URL} {
			if strings.Contains(series, bad) {
				t.Errorf("unbounded label in %s", series)
			}
		}
	}
	h := do(t, http.MethodGet, g.adminURL("/licensegate/health"), nil)
	if p, isNum := h.json["webhook_pending"].(float64); !isNum || p != 0 {
		t.Errorf("health webhook_pending = %v, want 0: %s", h.json["webhook_pending"], h.body)
	}
	if t.Failed() {
		t.Logf("licensegate series:\n%v", m)
	}
}

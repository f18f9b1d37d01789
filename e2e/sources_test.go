package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The vendors' keys for the end-to-end product, one per source.
const (
	envatoKey   = "11111111-1111-4111-8111-111111111111"
	apptrovoKey = "22222222-2222-4222-8222-222222222222"
	lemonKey    = "33333333-3333-4333-8333-333333333333"
	ddpKey      = "85DB262A-C19D4B06-A5335A6B-8C079166"
	cpKey       = "CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123"
	gumroadKey  = "GUMROAD-KEY-0001"
	keygenKey   = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3"

	keygenProduct = "4c6b1e7a-2f0e-4b5f-9e4b-1f3b7a4c9d21"
)

// vendors fakes every marketplace's verify API, as documented, on one
// server: each answers for its own key and says "not found" in its own way
// for any other. mode switches a vendor into an outage.
type vendors struct {
	mu    sync.Mutex
	mode  map[string]string // vendor -> "", "down", "5xx", "429", "401", "403", "slow", "delay"
	calls map[string]*atomic.Int64
}

func newVendors() *vendors {
	v := &vendors{mode: map[string]string{}, calls: map[string]*atomic.Int64{}}
	for _, n := range []string{"envato", "apptrovo", "digitaldownloads", "cpstore", "lemonsqueezy", "gumroad", "keygen"} {
		v.calls[n] = new(atomic.Int64)
	}
	return v
}

func (v *vendors) set(vendor, mode string) {
	v.mu.Lock()
	v.mode[vendor] = mode
	v.mu.Unlock()
}

func (v *vendors) count(vendor string) int64 { return v.calls[vendor].Load() }

func (v *vendors) total() int64 {
	var n int64
	for _, c := range v.calls {
		n += c.Load()
	}
	return n
}

func (v *vendors) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vendor := map[string]string{
		"/v3/market/author/sale":                          "envato",
		"/api/v1/licenses/verify":                         "", // apptrovo (GET) or cpstore (POST)
		"/v1/licenses/verify":                             "digitaldownloads",
		"/v1/licenses/validate":                           "lemonsqueezy",
		"/v2/licenses/verify":                             "gumroad",
		"/v1/accounts/acme/licenses/actions/validate-key": "keygen",
	}[r.URL.Path]
	if r.URL.Path == "/api/v1/licenses/verify" {
		vendor = "cpstore"
		if r.Method == http.MethodGet {
			vendor = "apptrovo"
		}
	}
	if vendor == "" {
		http.NotFound(w, r)
		return
	}
	v.calls[vendor].Add(1)
	v.mu.Lock()
	mode := v.mode[vendor]
	v.mu.Unlock()
	if v.outage(w, mode) {
		return
	}
	if mode == "delay" {
		time.Sleep(300 * time.Millisecond)
	}
	status, body := answer(vendor, r)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// outage answers as a vendor in trouble; false when the vendor is fine.
func (v *vendors) outage(w http.ResponseWriter, mode string) bool {
	switch mode {
	case "down":
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
	case "5xx":
		w.WriteHeader(http.StatusBadGateway)
	case "429":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case "429-long":
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	case "401", "403":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(map[string]int{"401": 401, "403": 403}[mode])
		_, _ = io.WriteString(w, `{"error":"invalid_token","error_description":"The access token provided is invalid"}`)
	case "slow":
		time.Sleep(2 * time.Second)
		w.WriteHeader(http.StatusGatewayTimeout)
	default:
		return false
	}
	return true
}

// answer is the vendor's documented answer for the key in the request.
func answer(vendor string, r *http.Request) (int, string) {
	switch vendor {
	case "envato":
		if r.URL.Query().Get("code") != envatoKey || r.Header.Get("Authorization") != "Bearer test-envato-token" {
			return 404, `{"error":404,"description":"No sale belonging to the current user found with that code"}`
		}
		return 200, `{"amount":"19.84","sold_at":"2016-09-07T10:54:28+10:00","license":"Extended License","support_amount":"0.00",
			"supported_until":"2099-03-09T01:54:28+11:00","item":{"id":17022701,"name":"Converter Pro"},"buyer":"envato_buyer","purchase_count":1}`
	case "apptrovo":
		if r.URL.Query().Get("license_key") != apptrovoKey {
			return 200, `{"valid":false,"failure_reason":"Invalid license key for this product."}`
		}
		return 200, `{"valid":true,"license_id":142,"product_id":28,"product":{"id":28,"slug":"converter-pro-at","name":"Converter Pro","retired":false},
			"license_type":"standard","licensed_to":"Acme Corp","domain":null,"expires_at":null,"support_expires_at":"2099-04-08T00:00:00Z",
			"support_active":true,"activations_used":0,"activations_limit":3,"failure_reason":null}`
	case "digitaldownloads":
		_ = r.ParseForm()
		if r.PostForm.Get("license_key") != ddpKey || r.PostForm.Get("increment_uses_count") != "false" {
			return 404, `{}`
		}
		return 200, `{"valid":true,"disabled_at":null,"uses":0,"license_key":"` + ddpKey + `","license_key_list_token":"93cf9a0fcbd6fd94448c16ed71eb81ff",
			"assigned_at":"2021-02-05T20:09:27Z","created_at":"2021-01-05T20:09:27Z","order":{"status":"delivered","id":1,"email":"buyer@example.com"}}`
	case "cpstore":
		var req struct {
			LicenseKey string `json:"license_key"`
			Domain     string `json:"domain"`
			IP         string `json:"ip"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.LicenseKey != cpKey || req.Domain == "" || req.IP == "" {
			return 404, `{"valid":false,"reason":"License not found."}`
		}
		return 200, `{"valid":true,"product":"Converter Pro","expiry":null,"lifetime":true}`
	case "lemonsqueezy":
		_ = r.ParseForm()
		if r.PostForm.Get("license_key") != lemonKey {
			return 404, `{"valid":false,"error":"license_key not found."}`
		}
		return 200, `{"valid":true,"error":null,"license_key":{"id":1,"status":"active","key":"` + lemonKey + `","activation_limit":2,"activation_usage":0,
			"created_at":"2021-01-24T14:15:07.000000Z","expires_at":null,"test_mode":false},"instance":null,
			"meta":{"store_id":1,"order_id":2,"order_item_id":3,"product_id":4,"product_name":"Converter Pro","variant_id":5,"variant_name":"Default",
			"customer_id":6,"customer_name":"Luke Skywalker","customer_email":"luke@example.com"}}`
	case "gumroad":
		_ = r.ParseForm()
		if r.PostForm.Get("license_key") != gumroadKey || r.PostForm.Get("increment_uses_count") != "false" || r.PostForm.Get("product_id") != "gum-prod-1" {
			return 404, `{"success":false,"message":"That license does not exist for the provided product."}`
		}
		return 200, `{"success":true,"uses":0,"purchase":{"product_id":"gum-prod-1","product_name":"Converter Pro","email":"g@example.com","full_name":"Gum Buyer",
			"quantity":1,"variants":"","license_key":"` + gumroadKey + `","refunded":false,"disputed":false,"dispute_won":false,"chargebacked":false,
			"sale_timestamp":"2021-01-05T19:38:56Z","created_at":"2021-01-05T19:38:56Z"}}`
	case "keygen":
		var req struct {
			Meta struct{ Key string } `json:"meta"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Meta.Key != keygenKey {
			return 200, `{"meta":{"ts":"2026-03-01T12:00:00.000Z","valid":false,"detail":"does not exist","code":"NOT_FOUND"},"data":null}`
		}
		return 200, `{"meta":{"ts":"2026-03-01T12:00:00.000Z","valid":true,"detail":"is valid","code":"VALID"},"data":{"id":"b18e3f3a-330c-4d8d-ae2e-014db21fa827",
			"type":"licenses","attributes":{"name":"Pro licence","key":"` + keygenKey + `","expiry":null,"status":"ACTIVE","maxMachines":2,"metadata":{}},
			"relationships":{"product":{"data":{"type":"products","id":"` + keygenProduct + `"}},"policy":{"data":{"type":"policies","id":"p1"}}}}}`
	}
	return 500, `{}`
}

const sourcesTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		storage embedded {{DIR}}/licensegate.db
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		{{SOURCES}}
		product converter-pro {
			sources {{SOURCE_NAMES}}
			{{MAPPINGS}}
			activations 100
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange {{EXCHANGE}}
	}
	handle /convert* {
		license_gate
		reverse_proxy {{UPSTREAM}}
	}
}
`

// sourceConfig is each source's block and product mapping.
var sourceConfig = map[string][2]string{
	"envato":           {"source envato {\n\t\t\ttoken test-envato-token\n\t\t\tbase_url {{VENDOR}}\n\t\t\ttimeout 1s\n\t\t}", "envato_item 17022701"},
	"apptrovo":         {"source apptrovo {\n\t\t\tbase_url {{VENDOR}}\n\t\t}", "apptrovo_slug converter-pro-at"},
	"digitaldownloads": {"source digitaldownloads {\n\t\t\tbase_url {{VENDOR}}\n\t\t}", "ddp_list_token 93cf9a0fcbd6fd94448c16ed71eb81ff"},
	"cpstore":          {"source cpstore {\n\t\t\tbase_url {{VENDOR}}\n\t\t}", `cpstore_product "Converter Pro"`},
	"lemonsqueezy":     {"source lemonsqueezy {\n\t\t\tbase_url {{VENDOR}}\n\t\t}", "lemonsqueezy_product 4"},
	"gumroad":          {"source gumroad {\n\t\t\tbase_url {{VENDOR}}\n\t\t}", "gumroad_product gum-prod-1"},
	"keygen":           {"source keygen {\n\t\t\taccount acme\n\t\t\tbase_url {{VENDOR}}\n\t\t}", "keygen_product " + keygenProduct},
}

// startWithSources runs a gateway selling converter-pro on the named
// sources, all pointed at one fake vendor server.
func startWithSources(t *testing.T, names ...string) (*gateway, *vendors) {
	t.Helper()
	g, v := withSources(t, names...)
	g.start()
	return g, v
}

// withSources is startWithSources without the start, for a test that
// changes the Caddyfile or the environment first.
func withSources(t *testing.T, names ...string) (*gateway, *vendors) {
	t.Helper()
	v := newVendors()
	vsrv := httptest.NewServer(v)
	t.Cleanup(vsrv.Close)
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = sourcesTemplate
	var blocks, mappings []string
	for _, n := range names {
		blocks = append(blocks, strings.ReplaceAll(sourceConfig[n][0], "{{VENDOR}}", vsrv.URL))
		mappings = append(mappings, sourceConfig[n][1])
	}
	g.vars["SOURCES"] = strings.Join(blocks, "\n\t\t")
	g.vars["SOURCE_NAMES"] = strings.Join(names, " ")
	g.vars["MAPPINGS"] = strings.Join(mappings, "\n\t\t\t")
	// Concurrent activations from the one test address: each holds a
	// failed_limit call while at work (given back when it succeeds).
	g.vars["EXCHANGE"] = "{\n\t\t\tfailed_limit 100/m\n\t\t}"
	return g, v
}

var allSources = []string{"envato", "apptrovo", "digitaldownloads", "cpstore", "lemonsqueezy", "gumroad", "keygen"}

func TestActivationThroughEverySource(t *testing.T) {
	g, v := startWithSources(t, allSources...)
	cases := []struct {
		source, key, typ, licensedTo string
	}{
		{"envato", envatoKey, "extended", "envato_buyer"},
		{"apptrovo", apptrovoKey, "standard", "Acme Corp"},
		{"digitaldownloads", ddpKey, "", "buyer@example.com"},
		{"cpstore", cpKey, "", ""},
		{"lemonsqueezy", lemonKey, "", "Luke Skywalker"},
		{"gumroad", gumroadKey, "", "Gum Buyer"},
		{"keygen", keygenKey, "", ""},
	}
	for i, c := range cases {
		t.Run(c.source, func(t *testing.T) {
			before := v.count(c.source)
			domain := fmt.Sprintf("shop%d.example.com", i)
			a := g.activate(c.key, domain)
			expectStatus(t, a, http.StatusCreated, "")
			if got := a.str("license", "source"); got != c.source {
				t.Fatalf("source %q, want %q: %s", got, c.source, a.body)
			}
			if got := a.str("license", "product"); got != "converter-pro" {
				t.Fatalf("product %q", got)
			}
			if c.typ != "" && a.str("license", "type") != c.typ {
				t.Errorf("type %q, want %q", a.str("license", "type"), c.typ)
			}
			if c.licensedTo != "" && a.str("license", "licensed_to") != c.licensedTo {
				t.Errorf("licensed_to %q, want %q", a.str("license", "licensed_to"), c.licensedTo)
			}
			if v.count(c.source)-before != 1 {
				t.Fatalf("%d calls to %s, want 1", v.count(c.source)-before, c.source)
			}
			expectStatus(t, g.call(a.str("access_token")), http.StatusOK, "")
			// Known now: activating again asks nobody.
			total := v.total()
			expectStatus(t, g.activate(c.key, domain), http.StatusOK, "")
			expectStatus(t, g.activate(c.key, "second-"+domain), http.StatusCreated, "")
			if v.total() != total {
				t.Fatalf("a stored licence was verified again: %d calls", v.total()-total)
			}
		})
	}
	t.Run("unknown key fitting several formats", func(t *testing.T) {
		expectStatus(t, g.activate("44444444-4444-4444-8444-444444444444", "nobody.com"), http.StatusNotFound, "license_not_found")
	})
}

func TestKeyInNoFormatCallsNobody(t *testing.T) {
	// Every source with a strict format (Gumroad and Keygen accept nearly
	// any key, so they are left out here).
	g, v := startWithSources(t, "envato", "apptrovo", "digitaldownloads", "cpstore", "lemonsqueezy")
	for _, key := range []string{"hello-world", "1111-2222", "CP-SHORT", "DEMO-1111-2222-3333", "11111111-1111-4111-8111-11111111111\u0430"} {
		expectStatus(t, g.activate(key, "acme.com"), http.StatusUnprocessableEntity, "invalid_key_format")
	}
	if n := v.total(); n != 0 {
		t.Fatalf("%d upstream calls for keys in no format", n)
	}
}

func TestConcurrentActivationsOfAFreshKeyCallOnce(t *testing.T) {
	g, v := startWithSources(t, "envato")
	v.set("envato", "delay")
	const n = 50
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses <- g.activate(envatoKey, fmt.Sprintf("site%d.com", i)).status
		}(i)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusCreated {
			t.Fatalf("status %d", s)
		}
	}
	if got := v.count("envato"); got != 1 {
		t.Fatalf("%d upstream calls for %d concurrent activations of one key, want 1", got, n)
	}
}

func TestUpstreamOutagesAnswer503AndRecordNothing(t *testing.T) {
	for _, mode := range []string{"down", "5xx", "slow", "429", "401", "403"} {
		t.Run(mode, func(t *testing.T) {
			g, v := startWithSources(t, "envato")
			v.set("envato", mode)
			r := g.activate(envatoKey, "acme.com")
			expectStatus(t, r, http.StatusServiceUnavailable, "upstream_unavailable")
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			calls := v.count("envato")
			if (mode == "401" || mode == "403" || mode == "429") && calls != 1 {
				t.Fatalf("%s was retried: %d calls", mode, calls)
			}
			v.set("envato", "")
			if mode == "429" {
				time.Sleep(1100 * time.Millisecond) // the vendor's Retry-After
			}
			// Nothing was recorded: the first success creates the installation.
			ok := g.activate(envatoKey, "acme.com")
			expectStatus(t, ok, http.StatusCreated, "")
			if ok.num("license", "activations_used") != 1 {
				t.Fatalf("%s", ok.body)
			}
		})
	}
}

// TestReloadKeepsASourcesPause: a reload with the same configuration keeps
// a marketplace's Retry-After pause (and breaker), so a reload cannot be
// used to hammer a vendor that asked us to wait.
func TestReloadKeepsASourcesPause(t *testing.T) {
	g, v := startWithSources(t, "envato")
	v.set("envato", "429-long")
	expectStatus(t, g.activate(envatoKey, "acme.com"), http.StatusServiceUnavailable, "upstream_unavailable")
	v.set("envato", "")
	g.reload()
	r := g.activate(envatoKey, "acme.com")
	expectStatus(t, r, http.StatusServiceUnavailable, "upstream_unavailable")
	if calls := v.count("envato"); calls != 1 {
		t.Fatalf("%d calls to a vendor that asked for 60 s of quiet, across a reload", calls)
	}
}

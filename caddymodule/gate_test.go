package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// testSource vindicates every key for product p, with support until
// 2099.
type testSource struct{}

func (testSource) Name() string                          { return "test" }
func (testSource) CanonicalKey(k string) (string, error) { return k, nil }
func (testSource) Verify(context.Context, upstreams.Request) upstreams.Verdict {
	support := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "extended", SupportUntil: &support})
}

// gateFixture is a gate handler for product p, with one activated
// installation.
type gateFixture struct {
	gate   *Gate
	act    *gateway.Activation
	bearer []string // the Authorization header's value
	svc    *gateway.Service
}

func newGateFixture(tb testing.TB, obs ...gateway.Observer) *gateFixture {
	tb.Helper()
	cfg := gateway.Config{
		Sources:      map[string]upstreams.Source{"test": testSource{}},
		Products:     map[string]*gateway.Product{"p": {Name: "p", Sources: []string{"test"}, Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
	}
	if len(obs) > 0 {
		cfg.Observer = obs[0]
	}
	svc := newServiceForTest(tb, cfg)
	a, err := svc.Activate(context.Background(), gateway.ActivateRequest{Key: "KEY-1", Domain: "acme.com"})
	if err != nil {
		tb.Fatal(err)
	}
	return &gateFixture{
		gate:   &Gate{gate: svc.Gate(nil), logger: zap.NewNop(), staleFor: defaultStale, forward: httpapi.ForwardAll},
		act:    a,
		bearer: []string{"Bearer " + a.AccessToken},
		svc:    svc,
	}
}

// request is a gated request as Caddy's server hands it to the gate:
// with a replacer in its context.
func (f *gateFixture) request(header http.Header) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(http.MethodGet, "/convert", nil)
	for name, vals := range header {
		r.Header[name] = vals // as sent: not canonicalised
	}
	r.Header["Authorization"] = f.bearer
	return r, caddyhttp.NewTestReplacer(r)
}

// serve runs the gate and returns the request the next handler saw (nil
// when the gate refused).
func (f *gateFixture) serve(tb testing.TB, r *http.Request) (*httptest.ResponseRecorder, *http.Request) {
	tb.Helper()
	var seen *http.Request
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error { seen = r; return nil })
	w := httptest.NewRecorder()
	if err := f.gate.ServeHTTP(w, r, next); err != nil {
		tb.Fatal(err)
	}
	return w, seen
}

// The backend sees the gate's licence headers, once each, and nothing the
// client sent under a licence header's name in either spelling.
func TestGateReplacesClientLicenseHeaders(t *testing.T) {
	f := newGateFixture(t)
	r, _ := f.request(http.Header{
		"X-License-Product": {"forged", "twice"},
		"X-License-Admin":   {"true"},
		"X-License_Type":    {"extended"}, // HTTP_X_LICENSE_TYPE to php_fastcgi
		"x-license-domain":  {"evil.com"}, // a key nobody canonicalised
		"X_License_Class":   {"production"},
		"X-Licensed-To":     {"kept"}, // not ours
	})
	_, seen := f.serve(t, r)
	if seen == nil {
		t.Fatal("the gate refused a valid token")
	}
	want := http.Header{
		"X-License-Installation":   {f.act.InstallationID},
		"X-License-Product":        {"p"},
		"X-License-Domain":         {"acme.com"},
		"X-License-Type":           {"extended"},
		"X-License-Support-Active": {"true"},
		"X-License-Class":          {"production"},
	}
	for name, vals := range seen.Header {
		if httpapi.IsLicenseHeader(name) && !slices.Equal(vals, want[name]) {
			t.Errorf("backend saw %s: %q, want %q", name, vals, want[name])
		}
	}
	for name, vals := range want {
		if got := seen.Header[name]; !slices.Equal(got, vals) {
			t.Errorf("backend saw %s: %q, want %q", name, got, vals)
		}
	}
	if seen.Header.Get("Authorization") != "" {
		t.Error("backend saw the Authorization header")
	}
	if seen.Header.Get("X-Licensed-To") != "kept" {
		t.Error("a header that is not the gate's was removed")
	}
}

// A client's Connection header must not name a licence header: Caddy's
// reverse_proxy deletes the headers it names after the gate set its own.
// Its other tokens stay.
func TestGateStripsConnectionTokensNamingLicenseHeaders(t *testing.T) {
	f := newGateFixture(t)
	for _, c := range []struct {
		sent []string
		want []string // nil: no Connection header
	}{
		{[]string{"X-License-Support-Active"}, nil},
		{[]string{"keep-alive, X-License-Type"}, []string{"keep-alive"}},
		{[]string{" x-license-domain ,Upgrade,X-License_Product"}, []string{"Upgrade"}},
		{[]string{"close", "X-License-Installation, X-Other"}, []string{"close, X-Other"}},
		{[]string{"keep-alive"}, []string{"keep-alive"}},
		{[]string{"X-Licensed-To"}, []string{"X-Licensed-To"}},
	} {
		t.Run(strings.Join(c.sent, "|"), func(t *testing.T) {
			r, _ := f.request(http.Header{"Connection": c.sent})
			_, seen := f.serve(t, r)
			if seen == nil {
				t.Fatal("the gate refused a valid token")
			}
			if got := seen.Header["Connection"]; !slices.Equal(got, c.want) {
				t.Fatalf("Connection %q, want %q", got, c.want)
			}
			if seen.Header.Get("X-License-Support-Active") != "true" {
				t.Fatal("the gate's own header is missing")
			}
		})
	}
}

// forward picks which licence headers the backend sees; client-sent ones
// are stripped whatever is forwarded, and the placeholders are all set.
func TestGateForwardSubset(t *testing.T) {
	f := newGateFixture(t)
	set, err := httpapi.ParseForward([]string{"installation"})
	if err != nil {
		t.Fatal(err)
	}
	f.gate.forward = set
	r, repl := f.request(http.Header{"X-License-Product": {"forged"}, "X-License-Class": {"production"}})
	_, seen := f.serve(t, r)
	if seen == nil {
		t.Fatal("the gate refused a valid token")
	}
	for name, vals := range seen.Header {
		if httpapi.IsLicenseHeader(name) && name != "X-License-Installation" {
			t.Errorf("backend saw %s: %q with forward installation", name, vals)
		}
	}
	if got := seen.Header["X-License-Installation"]; !slices.Equal(got, []string{f.act.InstallationID}) {
		t.Errorf("X-License-Installation %q", got)
	}
	if got := repl.ReplaceAll("{license.product}", ""); got != "p" {
		t.Errorf("{license.product} = %q with forward installation", got)
	}
	if _, err := httpapi.ParseForward([]string{"installation", "licence"}); err == nil || !strings.Contains(err.Error(), `"licence" is not one of installation, product, domain, type, support_active, class`) {
		t.Fatalf("unknown forward name: %v", err)
	}
}

// A gate naming no products is refused when several are configured: a
// cheap product's token must not open an expensive product's API by
// omission. With one product it admits that one.
func TestGateProductsRequiredWithSeveral(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(keys, []byte("key,product\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	global := func(products string) string {
		db := filepath.Join(t.TempDir(), "lg.db")
		return "{\n\tadmin off\n\tlicensegate {\n\t\tstorage embedded " + db + "\n\t\tsource static {\n\t\t\tfile " +
			keys + "\n\t\t}\n" + products + "\t}\n}\n\n"
	}
	two := "\t\tproduct a {\n\t\t\tsources static\n\t\t}\n\t\tproduct b {\n\t\t\tsources static\n\t\t}\n"
	err := validate(t, global(two)+":0 {\n\tlicense_gate\n}\n")
	if err == nil || !strings.Contains(err.Error(), "license_gate: products: required when more than one product is configured (have: a, b)") {
		t.Fatalf("gate without products, two configured: %v", err)
	}
	if err := validate(t, global(two)+":0 {\n\tlicense_gate b {\n\t\tforward installation class\n\t}\n}\n"); err != nil {
		t.Fatalf("gate for b: %v", err)
	}
	if err := validate(t, global("\t\tproduct a {\n\t\t\tsources static\n\t\t}\n")+":0 {\n\tlicense_gate\n}\n"); err != nil {
		t.Fatalf("gate without products, one configured: %v", err)
	}
}

// Later handlers and logs read the grant as {license.*} placeholders.
func TestGatePlaceholders(t *testing.T) {
	f := newGateFixture(t)
	r, repl := f.request(nil)
	_, seen := f.serve(t, r)
	if seen == nil {
		t.Fatal("the gate refused a valid token")
	}
	// A later handler that rewrites a forwarded header in place
	// (request_header's replace) leaves the placeholders alone.
	for _, name := range httpapi.ForwardHeaders[:6] { // the default set
		seen.Header[name][0] = "rewritten"
	}
	if _, ok := seen.Header["X-License-Entitlements"]; ok {
		t.Error("X-License-Entitlements forwarded by default; it is opt-in")
	}
	want := map[string]string{
		"license.installation":   f.act.InstallationID,
		"license.id":             f.act.License.ID,
		"license.product":        "p",
		"license.domain":         "acme.com",
		"license.class":          "production",
		"license.type":           "extended",
		"license.support_active": "true",
		"license.stale":          "false",
	}
	for name, v := range want {
		if got := repl.ReplaceAll("{"+name+"}", "<unset>"); got != v {
			t.Errorf("{%s} = %q, want %q", name, got, v)
		}
	}
}

// A refused request reaches no later handler and sets no placeholder.
func TestGateRefusalStopsTheRequest(t *testing.T) {
	f := newGateFixture(t)
	for name, auth := range map[string][]string{
		"no token":  nil,
		"bad token": {"Bearer not-a-token"},
	} {
		t.Run(name, func(t *testing.T) {
			r, repl := f.request(nil)
			r.Header["Authorization"] = auth
			w, seen := f.serve(t, r)
			if seen != nil || w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, next handler called: %v", w.Code, seen != nil)
			}
			if got := repl.ReplaceAll("{license.id}", "<unset>"); got != "<unset>" {
				t.Errorf("{license.id} = %q on a refusal", got)
			}
		})
	}
}

func TestGateChallengeWithoutToken(t *testing.T) {
	g := &Gate{logger: zap.NewNop()}
	for name, auth := range map[string]string{"no header": "", "basic": "Basic dTpw", "empty bearer": "Bearer "} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			if err := g.ServeHTTP(rec, req, nil); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("%d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// The gate records the X-Product-Version an installation sends with its
// last seen, and the product's version counts follow; a malformed one is
// ignored, and the header reaches the backend as sent.
func TestGateRecordsProductVersion(t *testing.T) {
	f := newGateFixture(t)
	for _, v := range []string{"2.1.0", "not a version"} {
		r, _ := f.request(http.Header{"X-Product-Version": {v}})
		_, seen := f.serve(t, r)
		if seen == nil || seen.Header.Get("X-Product-Version") != v {
			t.Fatalf("backend saw %v", seen)
		}
	}
	ctx := context.Background()
	if err := f.svc.FlushLastSeen(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.InstalledVersions(ctx, "p")
	if err != nil || len(got) != 1 || got["2.1.0"] != 1 {
		t.Fatalf("installed versions %v, %v; want 2.1.0: 1", got, err)
	}
	if ins, _, err := f.svc.Installation(ctx, f.act.InstallationID); err != nil || ins.Version != "2.1.0" {
		t.Fatalf("the admin view's version: %+v, %v", ins, err)
	}
}

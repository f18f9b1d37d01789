package cpstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const key = "CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123"

var products = upstreams.ProductMap{
	{Product: "acme-theme", VendorID: "Acme Theme Pro"},
	{Product: "converter-pro", VendorID: "Converter Pro"},
	{Product: "converter-pro", VendorID: "Converter Pro (legacy name)"},
}

type reply struct {
	status int
	body   string
	header map[string]string
}

// fake is the store: it checks every request and gives one answer.
type fake struct {
	t     *testing.T
	srv   *httptest.Server
	rep   reply
	mu    sync.Mutex
	calls []map[string]string // decoded request bodies
}

func newFake(t *testing.T, rep reply) *fake {
	f := &fake{t: t, rep: rep}
	f.srv = upstreamtest.NewServer(t, f.serve)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if r.URL.Path != "/api/v1/licenses/verify" {
		t.Errorf("path %q, want /api/v1/licenses/verify", r.URL.Path)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query %q: the key must travel in the JSON body only", r.URL.RawQuery)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := r.Header.Get("Accept"); a != "application/json" {
		t.Errorf("Accept %q, want application/json (else Laravel redirects on validation errors)", a)
	}
	if ua := r.Header.Get("User-Agent"); ua != upstreams.UserAgent {
		t.Errorf("User-Agent %q", ua)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		t.Errorf("Authorization %q sent; the endpoint is public", auth)
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Errorf("request body %q is not JSON: %v", raw, err)
	}
	got := map[string]string{}
	for k, v := range body {
		s, ok := v.(string)
		if !ok {
			t.Errorf("field %s is %T, want a string", k, v)
		}
		switch k {
		case "license_key", "domain", "ip":
		default:
			t.Errorf("unexpected field %s", k)
		}
		got[k] = s
	}
	for _, k := range []string{"license_key", "domain", "ip"} {
		if got[k] == "" {
			t.Errorf("required field %s missing or empty", k)
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, got)
	f.mu.Unlock()
	upstreamtest.Write(w, f.rep.status, f.rep.header, f.rep.body, "application/json")
}

func (f *fake) Calls() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]string(nil), f.calls...)
}

func newSource(t *testing.T, base string, mod ...func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Products: products,
		Client: upstreams.Client{MaxBody: 4096, Now: func() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }}}, mod...)
}

func day(y int, m time.Month, d int) *time.Time {
	t := time.Date(y, m, d, 23, 59, 59, 0, time.UTC)
	return &t
}

func refusalBody(reason string) string {
	b, _ := json.Marshal(map[string]any{"valid": false, "reason": reason})
	return string(b)
}

func TestVerify(t *testing.T) {
	ok := func(b string) reply { return reply{status: 200, body: b} }
	tests := []struct {
		name    string
		product string // req.Product; "acme-theme" when empty and not noProduct
		noProd  bool
		rep     reply
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
		cause   func(error) bool // for Unknown; nil: any cause
		retry   time.Duration
	}{
		{
			name:    "valid with an expiry (documented body)",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": "2026-12-31", "lifetime": false}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "acme-theme", ExpiresAt: day(2026, 12, 31)},
		},
		{
			name:    "valid lifetime key",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": null, "lifetime": true}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "acme-theme"},
		},
		{
			name:    "valid, no expiry, not lifetime: no expiry",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": null, "lifetime": false}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "acme-theme"},
		},
		{
			name:    "lifetime wins over a stray expiry",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": "2020-01-01", "lifetime": true}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "acme-theme"},
		},
		{
			name:    "expiry given as a UTC date-time is kept as is",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": "2026-12-31T10:00:00Z", "lifetime": false}`),
			outcome: upstreams.Valid,
			record: upstreams.Record{Product: "acme-theme", ExpiresAt: func() *time.Time {
				t := time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC)
				return &t
			}()},
		},
		{
			name:    "unreadable expiry",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": "31/12/2026", "lifetime": false}`),
			outcome: upstreams.Unknown,
		},
		{
			name:    "product name compared without case and spaces",
			rep:     ok(`{"valid": true, "product": " acme theme PRO ", "expiry": null, "lifetime": true}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "acme-theme"},
		},
		{
			name:    "product with two store names (renamed)",
			product: "converter-pro",
			rep:     ok(`{"valid": true, "product": "Converter Pro (legacy name)", "expiry": null, "lifetime": true}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro"},
		},
		{
			name:    "no product in the request: any mapped name",
			noProd:  true,
			rep:     ok(`{"valid": true, "product": "Converter Pro", "expiry": "2027-02-28", "lifetime": false}`),
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro", ExpiresAt: day(2027, 2, 28)},
		},
		{
			name:    "key for another of the author's products",
			product: "converter-pro",
			rep:     ok(`{"valid": true, "product": "Acme Theme Pro", "expiry": null, "lifetime": true}`),
			outcome: upstreams.Invalid, reason: upstreams.WrongProduct,
		},
		{
			name:    "no product in the request: unmapped name",
			noProd:  true,
			rep:     ok(`{"valid": true, "product": "Some Other Plugin", "expiry": null, "lifetime": true}`),
			outcome: upstreams.Invalid, reason: upstreams.WrongProduct,
		},
		{
			name:    "valid answer naming no product",
			rep:     ok(`{"valid": true, "expiry": null, "lifetime": true}`),
			outcome: upstreams.Unknown,
		},
		{
			name:    "200 with valid false",
			rep:     ok(`{"valid": false, "product": "Acme Theme Pro"}`),
			outcome: upstreams.Unknown,
		},
		{
			name:    "200 without valid",
			rep:     ok(`{"product": "Acme Theme Pro"}`),
			outcome: upstreams.Unknown,
		},

		// Documented refusals.
		{name: "404 license not found", rep: reply{status: 404, body: refusalBody("License not found.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "403 invalid format", rep: reply{status: 403, body: refusalBody("Invalid license format.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "403 revoked", rep: reply{status: 403, body: refusalBody("License has been revoked.")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "403 expired", rep: reply{status: 403, body: refusalBody("License expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "403 max activations", rep: reply{status: 403, body: refusalBody("Max activations exceeded or unrecognized environment.")}, outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed},
		{name: "reason without its full stop, other case", rep: reply{status: 403, body: refusalBody("license  has been REVOKED")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "refusal without valid flag", rep: reply{status: 404, body: `{"reason":"License not found."}`}, outcome: upstreams.Invalid, reason: upstreams.NotFound},

		// Surprises.
		{name: "documented reason with the wrong status", rep: reply{status: 403, body: refusalBody("License not found.")}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 403)},
		{name: "404 from a missing route (Laravel JSON)", rep: reply{status: 404, body: `{"message":"The route api/v1/licenses/verify could not be found."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 404)},
		{name: "404 HTML page", rep: reply{status: 404, body: `<html>Not Found</html>`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 404)},
		{name: "403 from a firewall", rep: reply{status: 403, body: `<html>Access denied</html>`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 403)},
		{name: "unrecognised reason", rep: reply{status: 403, body: refusalBody("License suspended.")}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 403)},
		{name: "reason quoting the key", rep: reply{status: 403, body: refusalBody("Key " + key + " is blocked.")}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 403)},
		{name: "refusal saying valid true", rep: reply{status: 403, body: `{"valid":true,"reason":"License expired."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 403)},
		{
			name:    "422 validation error is our request's fault",
			rep:     reply{status: 422, body: `{"message":"The given data was invalid.","errors":{"ip":["The ip must be a valid IP address."]}}`},
			outcome: upstreams.Unknown,
			cause: func(err error) bool {
				return upstreamtest.IsStatusError(name, 422)(err) && strings.Contains(err.Error(), "fields: ip")
			},
		},
		{
			name:    "422 on the key is still not the buyer's fault",
			rep:     reply{status: 422, body: `{"message":"The given data was invalid.","errors":{"license_key":["The license key field is required."]}}`},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(name, 422),
		},
		{name: "422 unreadable", rep: reply{status: 422, body: `oops`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 422)},
		{name: "401", rep: reply{status: 401, body: `{"message":"Unauthenticated."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(name, 401)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.rep)
			s := newSource(t, f.srv.URL)
			product := tt.product
			if product == "" && !tt.noProd {
				product = "acme-theme"
			}
			v := s.Verify(context.Background(), upstreams.Request{Key: key, Product: product, Domain: "customer-site.example.com", IP: "203.0.113.42"})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, key, tt.cause, tt.retry)
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d calls, want 1", len(calls))
			}
			want := map[string]string{"license_key": key, "domain": "customer-site.example.com", "ip": "203.0.113.42"}
			for k, w := range want {
				if calls[0][k] != w {
					t.Errorf("sent %s = %q, want %q", k, calls[0][k], w)
				}
			}
		})
	}
}

// TestVerifyIP: the store format-checks ip only, so what is not an address
// it accepts becomes the placeholder rather than a 422.
func TestVerifyIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.42", "203.0.113.42"},
		{" 203.0.113.42 ", "203.0.113.42"},
		{"2001:db8::1", "2001:db8::1"},
		{"::ffff:203.0.113.42", "203.0.113.42"},
		{"", PlaceholderIP},
		{"fe80::1%eth0", PlaceholderIP},
		{"203.0.113.42:8080", PlaceholderIP},
		{"not-an-ip", PlaceholderIP},
	}
	for _, tt := range tests {
		f := newFake(t, reply{status: 200, body: `{"valid":true,"product":"Acme Theme Pro","expiry":null,"lifetime":true}`})
		s := newSource(t, f.srv.URL)
		v := s.Verify(context.Background(), upstreams.Request{Key: key, Product: "acme-theme", Domain: "customer-site.example.com", IP: tt.in})
		if v.Outcome != upstreams.Valid {
			t.Fatalf("IP %q: outcome %s", tt.in, v.Outcome)
		}
		if got := f.Calls()[0]["ip"]; got != tt.want {
			t.Errorf("IP %q sent as %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestVerifyNoCall: every call may spend one of the buyer's activation
// slots, so none is made when the answer could not be used.
func TestVerifyNoCall(t *testing.T) {
	tests := []struct {
		name string
		req  upstreams.Request
		err  error
	}{
		{"product without a store name", upstreams.Request{Key: key, Product: "other", Domain: "a.example"}, ErrNoProduct},
		{"no domain", upstreams.Request{Key: key, Product: "acme-theme"}, ErrNoDomain},
		{"blank domain", upstreams.Request{Key: key, Product: "acme-theme", Domain: "  "}, ErrNoDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, reply{status: 200, body: `{"valid":true,"product":"Acme Theme Pro","expiry":null,"lifetime":true}`})
			s := newSource(t, f.srv.URL)
			v := s.Verify(context.Background(), tt.req)
			if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, tt.err) {
				t.Fatalf("verdict %+v, want Unknown with %v", v, tt.err)
			}
			if n := len(f.Calls()); n != 0 {
				t.Fatalf("%d calls, want none", n)
			}
		})
	}
	s, err := New(Config{BaseURL: "https://store.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Verify(context.Background(), upstreams.Request{Key: key, Domain: "a.example"}); !errors.Is(v.Cause, ErrNoProduct) {
		t.Fatalf("no products configured: verdict %+v", v)
	}
}

// TestOutages: outages, rate limits and unreadable answers are Unknown,
// and no cause quotes the key.
func TestOutages(t *testing.T) {
	upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
		return newSource(t, o.BaseURL, func(c *Config) { c.Client = o.UpstreamClient() })
	}, upstreams.Request{Key: key, Product: "acme-theme", Domain: "customer-site.example.com", IP: "203.0.113.42"})
}

func TestBaseURLWithPath(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		w.WriteHeader(503)
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/shop/")
	s.Verify(context.Background(), upstreams.Request{Key: key, Product: "acme-theme", Domain: "a.example"})
	if path != "/shop/api/v1/licenses/verify" {
		t.Fatalf("path %q", path)
	}
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://store.example.com")
	if s.Name() != "cpstore" {
		t.Fatalf("Name %q", s.Name())
	}
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{key, key},
		{"cp-ab12cd-34ef56-gh78ij-90klmn-xyz123", key},
		{"Cp-Ab12cD-34EF56-gh78IJ-90KLMN-XYZ123", key},
		{"  " + key + "\r\n", key},
		{"\ufeff\u200b" + key + "\u00a0", key},
		{"CP-000000-ZZZZZZ-999999-AAAAAA-0A0A0A", "CP-000000-ZZZZZZ-999999-AAAAAA-0A0A0A"},

		{"", ""},
		{"CP-", ""},
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN", ""}, // four groups
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123-ABCDEF", ""}, // six groups
		{"CP-AB12C-34EF56-GH78IJ-90KLMN-XYZ1234", ""},        // group lengths shifted
		{"CP-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", ""},             // five-character groups
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ12", ""},         // short
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ1234", ""},       // long
		{"XP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123", ""},        // prefix
		{"CPX AB12CD-34EF56-GH78IJ-90KLMN-XYZ123", ""},       // prefix separator
		{"AB12CD-34EF56-GH78IJ-90KLMN-XYZ123", ""},           // no prefix
		{"CP_AB12CD_34EF56_GH78IJ_90KLMN_XYZ123", ""},        // underscores
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ12_", ""},        // punctuation
		{"CP-AB12CD 34EF56-GH78IJ-90KLMN-XYZ123", ""},        // inner space
		{"CP-AB12CD\u201334EF56-GH78IJ-90KLMN-XYZ123", ""},   // en dash look-alike
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ12\u0417", ""},   // Cyrillic Ze for 3
		{"\u0421P-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123", ""},   // Cyrillic Es for C
		{"85DB262A-C19D4B06-A5335A6B-8C079166", ""},          // a Digital Downloads key
		{"4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d", ""},         // a UUID
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123\x00", ""},    // control
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" for success
	}{
		{name: "minimal", cfg: Config{BaseURL: "https://store.example.com"}},
		{name: "with products and path", cfg: Config{BaseURL: "http://127.0.0.1:8080/shop", Products: products}},
		{name: "empty store name", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{Product: "p", VendorID: " "}}}, wantErr: "cpstore_product is empty"},
		{name: "empty product", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{VendorID: "Acme"}}}, wantErr: "product slug is empty"},
		{name: "one store product for two of ours", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{Product: "p", VendorID: "Acme"}, {Product: "q", VendorID: "Acme"}}}, wantErr: "given to both p and q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				if s.client.HTTP == nil || s.client.HTTP.Timeout != 0 || s.client.MaxBody != upstreams.DefaultMaxBody || s.client.Now == nil {
					t.Errorf("defaults not set: %+v", s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewBaseURL(t *testing.T) {
	upstreamtest.RunBaseURLCases(t, func(baseURL string) error {
		_, err := New(Config{BaseURL: baseURL, Products: products})
		return err
	})
}

package lemonsqueezy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const (
	keyActive  = "38b1460a-5104-4067-a91d-77b872934d51"
	keyUnknown = "99999999-9999-4999-8999-999999999999"
)

// answer is one canned License API response.
type answer struct {
	status int
	body   string
	header map[string]string
}

// validActive is the documented validate answer
// (docs.lemonsqueezy.com/api/license-api/validate-license-key), without
// an instance since the gateway never sends instance_id, and with an
// expires_at after the tests' now (the documented one, 2022, has passed).
const validActive = `{
  "valid": true,
  "error": null,
  "license_key": {
    "id": 1,
    "status": "active",
    "key": "38b1460a-5104-4067-a91d-77b872934d51",
    "activation_limit": 1,
    "activation_usage": 5,
    "created_at": "2021-01-24T14:15:07.000000Z",
    "expires_at": "2027-01-24T14:15:07.000000Z",
    "test_mode": false
  },
  "instance": null,
  "meta": {
    "store_id": 1,
    "order_id": 2,
    "order_item_id": 3,
    "product_id": 4,
    "product_name": "Example Product",
    "variant_id": 5,
    "variant_name": "Example Variant",
    "customer_id": 6,
    "customer_name": "Luke Skywalker",
    "customer_email": "luke@skywalker.dev"
  }
}`

// validInactive: a key never activated on an instance, with no activation
// limit and no expiry, of a product without variants.
const validInactive = `{
  "valid": true, "error": null,
  "license_key": {"id": 7, "status": "inactive", "key": "38b1460a-5104-4067-a91d-77b872934d51",
    "activation_limit": null, "activation_usage": 0,
    "created_at": "2024-05-01T09:00:00.000000Z", "expires_at": null, "test_mode": false},
  "instance": null,
  "meta": {"store_id": 1, "order_id": 8, "order_item_id": 9, "product_id": 4,
    "product_name": "Example Product", "variant_id": 10, "variant_name": "Default",
    "customer_id": 11, "customer_name": "", "customer_email": "leia@organa.dev"}
}`

// refused builds a valid:false answer with the key in the given status.
func refused(status, errMsg string) string {
	return `{"valid": false, "error": "` + errMsg + `",
  "license_key": {"id": 12, "status": "` + status + `", "key": "38b1460a-5104-4067-a91d-77b872934d51",
    "activation_limit": 3, "activation_usage": 1,
    "created_at": "2023-01-01T00:00:00.000000Z", "expires_at": "2024-01-01T00:00:00.000000Z", "test_mode": false},
  "instance": null,
  "meta": {"store_id": 1, "order_id": 2, "order_item_id": 3, "product_id": 4,
    "product_name": "Example Product", "variant_id": 5, "variant_name": "Example Variant",
    "customer_id": 6, "customer_name": "Luke Skywalker", "customer_email": "luke@skywalker.dev"}}`
}

const notFoundBody = `{"valid": false, "error": "license_key not found."}`

// fake is a Lemon Squeezy License API that asserts every request it gets.
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	answers map[string]answer // by license_key
	hits    atomic.Int32
}

func newFake(t *testing.T, answers map[string]answer) *fake {
	f := &fake{t: t, answers: answers}
	f.srv = upstreamtest.NewServer(t, f.serve)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	t := f.t
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if r.URL.Path != "/v1/licenses/validate" {
		t.Errorf("path %q, want /v1/licenses/validate", r.URL.Path)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query %q: the key must travel in the body", r.URL.RawQuery)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept %q, want application/json (required by the License API)", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q, want application/x-www-form-urlencoded", got)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q: the License API takes no credentials", got)
	}
	if got := r.Header.Get("User-Agent"); got != upstreams.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, upstreams.UserAgent)
	}
	if err := r.ParseForm(); err != nil {
		t.Errorf("form: %v", err)
	}
	if len(r.PostForm) != 1 || len(r.PostForm["license_key"]) != 1 {
		t.Errorf("form %v, want only license_key (no instance_id: the gateway keeps its own activations)", r.PostForm)
	}
	a, ok := f.answers[r.PostForm.Get("license_key")]
	if !ok {
		a = answer{status: http.StatusNotFound, body: notFoundBody}
	}
	upstreamtest.Write(w, a.status, a.header, a.body, "application/json")
}

var products = upstreams.ProductMap{
	{Product: "example", VendorID: "4"},
	{Product: "other", VendorID: "44"},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Products: products, Client: upstreams.Client{Now: func() time.Time { return now }}}, mod)
}

func TestVerify(t *testing.T) {
	exampleActive := upstreams.Record{
		Product: "example", Type: "example-variant", LicensedTo: "Luke Skywalker",
		ExpiresAt: upstreamtest.Time("2027-01-24T14:15:07Z"), ActivationsLimit: 1,
	}
	tests := []struct {
		name    string
		answer  answer
		product string // req.Product
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
		cause   func(error) bool // for Unknown
		retry   time.Duration
	}{
		{
			name:    "active key (documented answer)",
			answer:  answer{status: 200, body: validActive},
			outcome: upstreams.Valid,
			record:  exampleActive,
		},
		{
			name:    "active key, product named",
			answer:  answer{status: 200, body: validActive},
			product: "example",
			outcome: upstreams.Valid,
			record:  exampleActive,
		},
		{
			name:    "inactive key: valid, just no Lemon Squeezy instance yet",
			answer:  answer{status: 200, body: validInactive},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "example", Type: "regular", LicensedTo: "leia@organa.dev"},
		},
		{
			name:    "product_id as a string",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": "4"`, 1)},
			outcome: upstreams.Valid,
			record:  exampleActive,
		},
		{
			name:    "variant named like a licence type",
			answer:  answer{status: 200, body: strings.Replace(validActive, "Example Variant", "Extended License", 1)},
			outcome: upstreams.Valid,
			record: upstreams.Record{Product: "example", Type: "extended", LicensedTo: "Luke Skywalker",
				ExpiresAt: upstreamtest.Time("2027-01-24T14:15:07Z"), ActivationsLimit: 1},
		},
		{
			name:    "another mapped product",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 44`, 1)},
			outcome: upstreams.Valid,
			record: upstreams.Record{Product: "other", Type: "example-variant", LicensedTo: "Luke Skywalker",
				ExpiresAt: upstreamtest.Time("2027-01-24T14:15:07Z"), ActivationsLimit: 1},
		},
		{
			name:    "mapped product, but not the one asked for",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 44`, 1)},
			product: "example",
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "product not in the map (another store's key, too)",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 777`, 1)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "expired key",
			answer:  answer{status: 200, body: refused("expired", "This license key has expired.")},
			outcome: upstreams.Invalid,
			reason:  upstreams.Expired,
		},
		{
			name:    "disabled key",
			answer:  answer{status: 200, body: refused("disabled", "This license key has been disabled.")},
			outcome: upstreams.Invalid,
			reason:  upstreams.Disabled,
		},
		{
			name:    "disabled key answered with HTTP 400 (\"see the error field\")",
			answer:  answer{status: 400, body: refused("disabled", "This license key has been disabled.")},
			outcome: upstreams.Invalid,
			reason:  upstreams.Disabled,
		},
		{
			name:    "expired key of another product",
			answer:  answer{status: 200, body: strings.Replace(refused("expired", "expired"), `"product_id": 4`, `"product_id": 777`, 1)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "404 license_key not found (documented)",
			answer:  answer{status: 404, body: notFoundBody},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "404 with only the error field",
			answer:  answer{status: 404, body: `{"error": "license_key not found."}`},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "404 page not from Lemon Squeezy (wrong base_url, proxy)",
			answer:  answer{status: 404, body: "<html>404 Not Found</html>", header: map[string]string{"Content-Type": "text/html"}},
			outcome: upstreams.Unknown,
		},
		{name: "404 JSON of another shape", answer: answer{status: 404, body: `{"message":"Not Found"}`}, outcome: upstreams.Unknown},
		{name: "404 claiming valid", answer: answer{status: 404, body: validActive}, outcome: upstreams.Unknown},
		{
			name:    "active but not valid: unexplained",
			answer:  answer{status: 200, body: refused("active", "something else")},
			outcome: upstreams.Unknown,
		},
		{
			name:    "valid but expired: contradictory",
			answer:  answer{status: 200, body: strings.Replace(refused("expired", "x"), `"valid": false`, `"valid": true`, 1)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "unrecognised status",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"status": "active"`, `"status": "paused"`, 1)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "400 without a key description",
			answer:  answer{status: 400, body: `{"valid": false, "error": "An error occurred."}`},
			outcome: upstreams.Unknown,
		},
		{
			name:    "422 a required field missing (our request)",
			answer:  answer{status: 422, body: `{"message":"The license key field is required.","errors":{"license_key":["The license key field is required."]}}`},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(Name, 422),
		},
		{name: "401 from a proxy", answer: answer{status: 401, body: `{"error":"Unauthenticated."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 401)},
		{name: "no valid field", answer: answer{status: 200, body: `{"license_key": {"status": "active"}, "meta": {"product_id": 4}}`}, outcome: upstreams.Unknown},
		{name: "valid without license_key", answer: answer{status: 200, body: `{"valid": true, "meta": {"product_id": 4}}`}, outcome: upstreams.Unknown},
		{
			name:    "valid without meta",
			answer:  answer{status: 200, body: `{"valid": true, "license_key": {"status": "active", "activation_limit": 1}}`},
			outcome: upstreams.Unknown,
		},
		{
			name:    "product_id not an id",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 4.5`, 1)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "product_id a word",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": "four"`, 1)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "expires_at unreadable",
			answer:  answer{status: 200, body: strings.Replace(validActive, "2027-01-24T14:15:07.000000Z", "next year", 1)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "negative activation_limit",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"activation_limit": 1`, `"activation_limit": -1`, 1)},
			outcome: upstreams.Unknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]answer{keyActive: tt.answer})
			s := newSource(t, f.srv.URL, nil)
			v := s.Verify(context.Background(), upstreams.Request{Key: keyActive, Product: tt.product, Domain: "example.com", IP: "203.0.113.9"})
			if f.hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", f.hits.Load())
			}
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, keyActive, tt.cause, tt.retry)
		})
	}
}

// TestVerifyUnknownKey: the fake's default answer is the documented 404.
func TestVerifyUnknownKey(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyUnknown})
	upstreamtest.CheckVerdict(t, v, upstreams.Invalid, upstreams.NotFound, upstreams.Record{})
}

// TestVerifyCanonicalKey: the key is sent lower-case and trimmed even if
// the caller skipped CanonicalKey.
func TestVerifyCanonicalKey(t *testing.T) {
	f := newFake(t, map[string]answer{keyActive: {status: 200, body: validInactive}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: " " + strings.ToUpper(keyActive) + "\n"})
	upstreamtest.CheckVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "example", Type: "regular", LicensedTo: "leia@organa.dev",
		// the ids its webhooks name the purchase by
		Refs: []upstreams.VendorID{{Kind: upstreams.IDLicence, ID: "7"}, {Kind: upstreams.IDOrder, ID: "8"}}})
}

// TestVerifyNoMapping: a product without a lemonsqueezy_product is the
// author's configuration gap: Unknown, and nothing is asked.
func TestVerifyNoMapping(t *testing.T) {
	f := newFake(t, map[string]answer{keyActive: {status: 200, body: validActive}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyActive, Product: "unmapped"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, errNoMapping) {
		t.Fatalf("verdict %+v, want Unknown for the missing mapping", v)
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests for an unmapped product", f.hits.Load())
	}
}

// TestVerifyBadKey: a key that is not a UUID is not sent.
func TestVerifyBadKey(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: "not-a-key"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, upstreams.ErrKeyFormat) {
		t.Fatalf("verdict %+v, want Unknown wrapping ErrKeyFormat", v)
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests for a malformed key", f.hits.Load())
	}
}

// TestOutages: outages, rate limits and unreadable answers are Unknown,
// and no cause quotes the key.
func TestOutages(t *testing.T) {
	upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
		return newSource(t, o.BaseURL, func(c *Config) { c.Client = o.UpstreamClient() })
	}, upstreams.Request{Key: keyActive})
}

// TestBaseURLPrefix: a base URL with a path (a staging proxy) keeps it.
func TestBaseURLPrefix(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(validActive))
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/ls/", nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyActive})
	if v.Outcome != upstreams.Valid {
		t.Fatalf("verdict %+v, want Valid", v)
	}
	if path != "/ls/v1/licenses/validate" {
		t.Errorf("path %q, want /ls/v1/licenses/validate", path)
	}
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.lemonsqueezy.com", nil)
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{keyActive, keyActive},
		{strings.ToUpper(keyActive), keyActive},
		{"  " + keyActive + "\r\n", keyActive},
		{"\ufeff\u200b" + keyActive + "\u00a0", keyActive},
		{"", ""},
		{keyActive[:35], ""},
		{keyActive + "0", ""},
		{strings.ReplaceAll(keyActive, "-", ""), ""},
		{strings.Replace(keyActive, "-", "_", 1), ""},
		{strings.Replace(keyActive, "a", "g", 1), ""},
		{strings.Replace(keyActive, "-", "\u2013", 1), ""}, // en dash from a PDF
		{strings.Replace(keyActive, "a", "\u0430", 1), ""}, // Cyrillic a
		{strings.Replace(keyActive, "-", " ", 1), ""},
		{"85DB262A-C19D4B06-A5335A6B-8C079166", ""}, // a Gumroad-style key
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" when accepted
	}{
		{"ok", Config{BaseURL: "https://api.lemonsqueezy.com", Products: products}, ""},
		{"no products", Config{BaseURL: "https://api.lemonsqueezy.com"}, ""},
		{"blank base_url", Config{BaseURL: "  "}, "base_url is required"},
		{"negative max body", Config{BaseURL: "https://api.lemonsqueezy.com", Client: upstreams.Client{MaxBody: -1}}, "max_body"},
		{"empty slug", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "", VendorID: "4"}}}, "slug is empty"},
		{"product id not a number", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: "my-product"}}}, "lemonsqueezy_product"},
		{"product id empty", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: ""}}}, "lemonsqueezy_product"},
		{
			"product id for two products",
			Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: "4"}, {Product: "b", VendorID: "4"}}},
			"both a and b",
		},
		{
			"two ids for one product",
			Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: "4"}, {Product: "a", VendorID: "5"}}},
			"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				if s.Name() != "lemonsqueezy" {
					t.Errorf("Name %q", s.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %v, want one containing %q", err, tt.want)
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

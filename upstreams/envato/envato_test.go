package envato

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
	token = "s6IscWrJL3NsBnqvUy6Q3XiImvcZlwkn"

	codeRegular  = "a67f4582-95d6-4019-81f3-75d1ebe3a071"
	codeExtended = "0f6b1c2d-3e4f-4a5b-8c7d-9e0f1a2b3c4d"
	codeOther    = "11111111-2222-4333-8444-555555555555"
	codeUnknown  = "99999999-9999-4999-8999-999999999999"
)

// answer is one canned Envato response.
type answer struct {
	status int
	body   string
	header map[string]string
}

// The documented sale, from Envato's API reference and the community guide
// (forums.envato.com/t/how-to-verify-a-purchase-code-using-the-envato-api).
const regularSale = `{
  "amount": "19.84",
  "sold_at": "2016-09-07T10:54:28+10:00",
  "license": "Regular License",
  "support_amount": "0.00",
  "supported_until": "2017-03-09T01:54:28+11:00",
  "item": {
    "id": 17022701,
    "name": "SEO Studio - Professional Tools for SEO",
    "author_username": "baileyherbert",
    "updated_at": "2017-11-02T15:57:41+11:00",
    "site": "codecanyon.net",
    "price_cents": 2000,
    "published_at": "2016-07-13T19:07:03+10:00"
  },
  "buyer": "buyers_username",
  "purchase_count": 1
}`

// A guest checkout (buyer null) of an extended licence whose support was
// never bought (supported_until null).
const extendedGuestSale = `{
  "amount": "150.00",
  "sold_at": "2024-01-15T10:30:00+00:00",
  "license": "Extended License",
  "support_amount": "0.00",
  "supported_until": null,
  "item": {"id": 17022701, "name": "SEO Studio - Professional Tools for SEO"},
  "buyer": null,
  "purchase_count": 2
}`

// A sale of another of the author's items.
const otherItemSale = `{
  "amount": "12.00", "sold_at": "2024-02-01T00:00:00+00:00",
  "license": "Regular License", "support_amount": "0.00",
  "supported_until": "2024-08-01T00:00:00+00:00",
  "item": {"id": 55555555, "name": "Another Item"},
  "buyer": "someone", "purchase_count": 1
}`

const notFoundBody = `{"error":404,"description":"No sale belonging to the current user found with that code"}`

// fake is an Envato API that asserts every request it gets.
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	answers map[string]answer // by code
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
	if r.Method != http.MethodGet {
		t.Errorf("method %s, want GET", r.Method)
	}
	if r.URL.Path != "/v3/market/author/sale" {
		t.Errorf("path %q, want /v3/market/author/sale", r.URL.Path)
	}
	q := r.URL.Query()
	if len(q) != 1 || len(q["code"]) != 1 {
		t.Errorf("query %q, want only code", r.URL.RawQuery)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("Authorization %q, want the bearer personal token", got)
	}
	if got := r.Header.Get("User-Agent"); got != upstreams.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, upstreams.UserAgent)
	}
	if r.ContentLength > 0 {
		t.Errorf("a GET with a %d-byte body", r.ContentLength)
	}
	a, ok := f.answers[q.Get("code")]
	if !ok {
		a = answer{status: http.StatusNotFound, body: notFoundBody}
	}
	upstreamtest.Write(w, a.status, a.header, a.body, "application/json")
}

var products = upstreams.ProductMap{
	{Product: "seo-studio", VendorID: "17022701"},
	{Product: "other-item", VendorID: "55555555"},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Token: token, Products: products, Client: upstreams.Client{Now: func() time.Time { return now }}}, mod)
}

func TestVerify(t *testing.T) {
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
			name:    "regular licence",
			answer:  answer{status: 200, body: regularSale},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: upstreamtest.Time("2017-03-08T14:54:28Z")},
		},
		{
			name:    "regular licence, product named",
			answer:  answer{status: 200, body: regularSale},
			product: "seo-studio",
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: upstreamtest.Time("2017-03-09T01:54:28+11:00")},
		},
		{
			name:    "extended licence, guest checkout, no support",
			answer:  answer{status: 200, body: extendedGuestSale},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "extended"},
		},
		{
			name:    "item id as a string",
			answer:  answer{status: 200, body: strings.Replace(regularSale, `"id": 17022701`, `"id": "17022701"`, 1)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: upstreamtest.Time("2017-03-08T14:54:28Z")},
		},
		{
			name:    "another licence name keeps its words",
			answer:  answer{status: 200, body: strings.Replace(regularSale, "Regular License", "Multisite License", 1)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "multisite", LicensedTo: "buyers_username", SupportUntil: upstreamtest.Time("2017-03-08T14:54:28Z")},
		},
		{
			name:    "another mapped item",
			answer:  answer{status: 200, body: otherItemSale},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "other-item", Type: "regular", LicensedTo: "someone", SupportUntil: upstreamtest.Time("2024-08-01T00:00:00Z")},
		},
		{
			name:    "mapped item, but not the product asked for",
			answer:  answer{status: 200, body: otherItemSale},
			product: "seo-studio",
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "item not in the map",
			answer:  answer{status: 200, body: strings.Replace(regularSale, "17022701", "12345678", 1)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "404 no sale (also reversals and closed buyer accounts)",
			answer:  answer{status: 404, body: notFoundBody},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "404 with the error as a string",
			answer:  answer{status: 404, body: `{"error":"404","description":"No sale belonging to the current user found with that code"}`},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "404 page not from Envato (wrong base_url, proxy)",
			answer:  answer{status: 404, body: "<html><body>404 Not Found</body></html>", header: map[string]string{"Content-Type": "text/html"}},
			outcome: upstreams.Unknown,
		},
		{
			name:    "404 with an empty body",
			answer:  answer{status: 404},
			outcome: upstreams.Unknown,
		},
		{
			name:    "401 token deleted",
			answer:  answer{status: 401, body: `{"error":"invalid_token","description":"The access token provided is invalid"}`},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(Name, 401),
		},
		{
			name:    "403 token without sales permission",
			answer:  answer{status: 403, body: `{"error":"forbidden","description":"Forbidden"}`},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(Name, 403),
		},
		{
			name:    "400 bad request is not a verdict on the code",
			answer:  answer{status: 400, body: `{"error":400,"description":"Invalid purchase code"}`},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(Name, 400),
		},
		{name: "no item", answer: answer{status: 200, body: `{"license":"Regular License","buyer":"x"}`}, outcome: upstreams.Unknown},
		{name: "item without id", answer: answer{status: 200, body: `{"license":"Regular License","item":{"name":"x"}}`}, outcome: upstreams.Unknown},
		{name: "item id not a number", answer: answer{status: 200, body: `{"license":"Regular License","item":{"id":1.7e7}}`}, outcome: upstreams.Unknown},
		{name: "item id negative", answer: answer{status: 200, body: `{"license":"Regular License","item":{"id":-17022701}}`}, outcome: upstreams.Unknown},
		{
			name:    "supported_until unreadable",
			answer:  answer{status: 200, body: strings.Replace(regularSale, "2017-03-09T01:54:28+11:00", "next March", 1)},
			outcome: upstreams.Unknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]answer{codeRegular: tt.answer})
			s := newSource(t, f.srv.URL, nil)
			v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular, Product: tt.product, Domain: "example.com", IP: "203.0.113.9"})
			if f.hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", f.hits.Load())
			}
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, codeRegular, tt.cause, tt.retry)
		})
	}
}

// TestVerifyCanonicalCode: the code is sent lower-case and trimmed even if
// the caller skipped CanonicalKey.
func TestVerifyCanonicalCode(t *testing.T) {
	f := newFake(t, map[string]answer{codeExtended: {status: 200, body: extendedGuestSale}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: " " + strings.ToUpper(codeExtended) + "\n"})
	upstreamtest.CheckVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "seo-studio", Type: "extended"})
}

// TestVerifyNoMapping: a product without an envato_item is the author's
// configuration gap; nothing is asked and nothing is decided.
func TestVerifyNoMapping(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular, Product: "not-on-envato"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, errNoMapping) {
		t.Fatalf("verdict %+v, want Unknown for the missing envato_item", v)
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests for an unmapped product", f.hits.Load())
	}
}

func TestVerifyEmptyMapIsWrongProduct(t *testing.T) {
	f := newFake(t, map[string]answer{codeRegular: {status: 200, body: regularSale}})
	s := newSource(t, f.srv.URL, func(c *Config) { c.Products = nil })
	v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular})
	upstreamtest.CheckVerdict(t, v, upstreams.Invalid, upstreams.WrongProduct, upstreams.Record{})
}

func TestVerifyBaseURLPathPrefix(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(regularSale))
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/staging/", nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular})
	if v.Outcome != upstreams.Valid || path != "/staging/v3/market/author/sale" {
		t.Fatalf("outcome %s, path %q", v.Outcome, path)
	}
}

// TestOutages: outages, rate limits and unreadable answers are Unknown,
// and no cause quotes the purchase code.
func TestOutages(t *testing.T) {
	upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
		return newSource(t, o.BaseURL, func(c *Config) { c.Client = o.UpstreamClient() })
	}, upstreams.Request{Key: codeRegular})
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.envato.com", nil)
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{codeRegular, codeRegular},
		{strings.ToUpper(codeRegular), codeRegular},
		{"  " + codeRegular + "\t\n", codeRegular},
		{"\ufeff\u200b" + codeRegular + "\u00a0", codeRegular},
		{"A67F4582-95d6-4019-81F3-75D1EBE3A071", codeRegular},
		{"", ""},
		{"   ", ""},
		{codeRegular[:35], ""},
		{codeRegular + "0", ""},
		{strings.ReplaceAll(codeRegular, "-", ""), ""},
		{"a67f4582_95d6_4019_81f3_75d1ebe3a071", ""},
		{"g67f4582-95d6-4019-81f3-75d1ebe3a071", ""},
		{"a67f458-295d6-4019-81f3-75d1ebe3a071", ""},
		{"a67f4582-95d6-4019-81f3 75d1ebe3a071", ""},
		{"{a67f4582-95d6-4019-81f3-75d1ebe3a071}", ""},
		{"a67f4582\u201395d6-4019-81f3-75d1ebe3a071", ""},          // en dash
		{"a67f4582\u201195d6-4019-81f3-75d1ebe3a071", ""},          // non-breaking hyphen
		{"a67f4582-95d6-4019-81f3-75d1eb\u0435\u0430071", ""},      // Cyrillic e, a
		{"\uff41\uff16\uff17f4582-95d6-4019-81f3-75d1ebe3a07", ""}, // full-width
		{"a67f4582-95d6-4019-81f3-75d1ebe3a07\u0131", ""},          // dotless i
	})
}

func TestNew(t *testing.T) {
	ok := Config{BaseURL: "https://api.envato.com", Token: token, Products: products}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error
	}{
		{"no token", func(c *Config) { c.Token = "" }, "token is required"},
		{"blank token", func(c *Config) { c.Token = " \n" }, "token is required"},
		{"token with a space", func(c *Config) { c.Token = "s6Isc WrJL3" }, "token contains"},
		{"token with non-ASCII", func(c *Config) { c.Token = "s6Isc\u2013WrJL3" }, "token contains"},
		{"negative max body", func(c *Config) { c.Client.MaxBody = -1 }, "max_body"},
		{"item id not a number", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: "seo-studio"}} }, "envato_item"},
		{"item id empty", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: ""}} }, "envato_item"},
		{"item id leading zero", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: "017022701"}} }, "envato_item"},
		{"item id with spaces", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: " 17022701"}} }, "envato_item"},
		{"empty product", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "", VendorID: "17022701"}} }, "product slug is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			s, err := New(cfg)
			if err == nil || s != nil {
				t.Fatalf("New accepted %+v", cfg)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "WrJL3") {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
	s, err := New(ok)
	if err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	if s.Name() != "envato" || s.client.MaxBody != upstreams.DefaultMaxBody || s.client.HTTP == nil || s.client.Now == nil {
		t.Errorf("defaults not applied: %+v", s)
	}
	if s.client.HTTP.Timeout != 0 {
		t.Errorf("default client has its own timeout %s", s.client.HTTP.Timeout)
	}
	if s, err := New(Config{BaseURL: "http://127.0.0.1:8080/", Token: "  " + token + "\n"}); err != nil || s.auth != "Bearer "+token {
		t.Errorf("a token with a trailing newline ({file.*}) was not trimmed: %v", err)
	}
}

func TestNewBaseURL(t *testing.T) {
	upstreamtest.RunBaseURLCases(t, func(baseURL string) error {
		_, err := New(Config{BaseURL: baseURL, Token: token, Products: products})
		return err
	})
}

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
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
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
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

var products = upstreams.ProductMap{
	{Product: "seo-studio", VendorID: "17022701"},
	{Product: "other-item", VendorID: "55555555"},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	cfg := Config{BaseURL: base, Token: token, Products: products, Now: func() time.Time { return now }}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func tp(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	t = t.UTC()
	return &t
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
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: tp("2017-03-08T14:54:28Z")},
		},
		{
			name:    "regular licence, product named",
			answer:  answer{status: 200, body: regularSale},
			product: "seo-studio",
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: tp("2017-03-09T01:54:28+11:00")},
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
			record:  upstreams.Record{Product: "seo-studio", Type: "regular", LicensedTo: "buyers_username", SupportUntil: tp("2017-03-08T14:54:28Z")},
		},
		{
			name:    "another licence name keeps its words",
			answer:  answer{status: 200, body: strings.Replace(regularSale, "Regular License", "Multisite License", 1)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "seo-studio", Type: "multisite", LicensedTo: "buyers_username", SupportUntil: tp("2017-03-08T14:54:28Z")},
		},
		{
			name:    "another mapped item",
			answer:  answer{status: 200, body: otherItemSale},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "other-item", Type: "regular", LicensedTo: "someone", SupportUntil: tp("2024-08-01T00:00:00Z")},
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
			cause:   authorError(401),
		},
		{
			name:    "403 token without sales permission",
			answer:  answer{status: 403, body: `{"error":"forbidden","description":"Forbidden"}`},
			outcome: upstreams.Unknown,
			cause:   authorError(403),
		},
		{
			name:    "400 bad request is not a verdict on the code",
			answer:  answer{status: 400, body: `{"error":400,"description":"Invalid purchase code"}`},
			outcome: upstreams.Unknown,
			cause:   statusError(400),
		},
		{
			name:    "429 with Retry-After seconds",
			answer:  answer{status: 429, body: `{"error":429}`, header: map[string]string{"Retry-After": "30"}},
			outcome: upstreams.Unknown,
			cause:   rateLimited(30 * time.Second),
			retry:   30 * time.Second,
		},
		{
			name:    "429 with a Retry-After date",
			answer:  answer{status: 429, header: map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)}},
			outcome: upstreams.Unknown,
			cause:   rateLimited(2 * time.Minute),
			retry:   2 * time.Minute,
		},
		{
			name:    "429 without Retry-After",
			answer:  answer{status: 429},
			outcome: upstreams.Unknown,
			cause:   rateLimited(0),
		},
		{name: "500", answer: answer{status: 500, body: `{"error":500}`}, outcome: upstreams.Unknown, cause: statusError(500)},
		{name: "502", answer: answer{status: 502, body: "bad gateway"}, outcome: upstreams.Unknown, cause: statusError(502)},
		{name: "503", answer: answer{status: 503, header: map[string]string{"Retry-After": "120"}}, outcome: upstreams.Unknown, cause: statusError(503)},
		{name: "204", answer: answer{status: 204}, outcome: upstreams.Unknown, cause: statusError(204)},
		{name: "unparseable JSON", answer: answer{status: 200, body: `{"amount": "19.84", "item": {`}, outcome: upstreams.Unknown},
		{name: "HTML with 200", answer: answer{status: 200, body: "<html>maintenance</html>"}, outcome: upstreams.Unknown},
		{name: "null", answer: answer{status: 200, body: "null"}, outcome: upstreams.Unknown},
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
			checkVerdict(t, v, tt.outcome, tt.reason, tt.record)
			if tt.outcome == upstreams.Unknown {
				if v.Cause == nil {
					t.Fatal("Unknown without a cause")
				}
				if tt.cause != nil && !tt.cause(v.Cause) {
					t.Errorf("cause %v (%T) is not the expected kind", v.Cause, v.Cause)
				}
				if strings.Contains(v.Cause.Error(), codeRegular) {
					t.Errorf("cause %q holds the purchase code", v.Cause)
				}
			}
			if v.RetryAfter != tt.retry {
				t.Errorf("RetryAfter %s, want %s", v.RetryAfter, tt.retry)
			}
		})
	}
}

func checkVerdict(t *testing.T, v upstreams.Verdict, outcome upstreams.Outcome, reason upstreams.Reason, rec upstreams.Record) {
	t.Helper()
	if v.Outcome != outcome {
		t.Fatalf("outcome %s (reason %q, cause %v), want %s", v.Outcome, v.Reason, v.Cause, outcome)
	}
	if v.Reason != reason {
		t.Errorf("reason %q, want %q", v.Reason, reason)
	}
	if outcome != upstreams.Valid {
		if v.Record != (upstreams.Record{}) {
			t.Errorf("record %+v set on a %s verdict", v.Record, outcome)
		}
		return
	}
	got := v.Record
	if got.Product != rec.Product {
		t.Errorf("Product %q, want %q", got.Product, rec.Product)
	}
	if got.Type != rec.Type {
		t.Errorf("Type %q, want %q", got.Type, rec.Type)
	}
	if got.LicensedTo != rec.LicensedTo {
		t.Errorf("LicensedTo %q, want %q", got.LicensedTo, rec.LicensedTo)
	}
	if !sameTime(got.ExpiresAt, rec.ExpiresAt) {
		t.Errorf("ExpiresAt %v, want %v", got.ExpiresAt, rec.ExpiresAt)
	}
	if !sameTime(got.SupportUntil, rec.SupportUntil) {
		t.Errorf("SupportUntil %v, want %v", got.SupportUntil, rec.SupportUntil)
	}
	if got.SupportUntil != nil && got.SupportUntil.Location() != time.UTC {
		t.Errorf("SupportUntil %v is not in UTC", got.SupportUntil)
	}
	if got.Retired != rec.Retired {
		t.Errorf("Retired %v, want %v", got.Retired, rec.Retired)
	}
	if got.ActivationsLimit != rec.ActivationsLimit {
		t.Errorf("ActivationsLimit %d, want %d", got.ActivationsLimit, rec.ActivationsLimit)
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func authorError(status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.AuthorCredentialError
		return errors.As(err, &e) && e.Status == status && e.Source == "envato"
	}
}

func statusError(status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.StatusError
		return errors.As(err, &e) && e.Status == status
	}
}

func rateLimited(d time.Duration) func(error) bool {
	return func(err error) bool {
		var e *upstreams.RateLimitError
		return errors.As(err, &e) && e.RetryAfter == d
	}
}

// TestVerifyCanonicalCode: the code is sent lower-case and trimmed even if
// the caller skipped CanonicalKey.
func TestVerifyCanonicalCode(t *testing.T) {
	f := newFake(t, map[string]answer{codeExtended: {status: 200, body: extendedGuestSale}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: " " + strings.ToUpper(codeExtended) + "\n"})
	checkVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "seo-studio", Type: "extended"})
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
	checkVerdict(t, v, upstreams.Invalid, upstreams.WrongProduct, upstreams.Record{})
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

func TestVerifyBodyTooLarge(t *testing.T) {
	big := strings.Replace(regularSale, `"amount": "19.84"`, `"amount": "`+strings.Repeat("9", 4096)+`"`, 1)
	for _, chunked := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if chunked {
				w.(http.Flusher).Flush() // no Content-Length: the limit must hold while reading
			}
			_, _ = w.Write([]byte(big))
		}))
		s := newSource(t, srv.URL, func(c *Config) { c.MaxBody = 1024 })
		v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular})
		srv.Close()
		if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, upstreams.ErrBodyTooLarge) {
			t.Errorf("chunked=%v: verdict %+v, want Unknown with ErrBodyTooLarge", chunked, v)
		}
	}
}

func TestVerifyConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	s := newSource(t, base, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: codeRegular})
	if v.Outcome != upstreams.Unknown || v.Cause == nil {
		t.Fatalf("verdict %+v, want Unknown", v)
	}
	if strings.Contains(v.Cause.Error(), codeRegular) {
		t.Errorf("cause %q holds the purchase code", v.Cause)
	}
	for err := errors.Unwrap(v.Cause); err != nil; err = errors.Unwrap(err) {
		if strings.Contains(err.Error(), codeRegular) {
			t.Errorf("wrapped error %q holds the purchase code", err)
		}
	}
}

func TestVerifyContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s := newSource(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	v := s.Verify(ctx, upstreams.Request{Key: codeRegular})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, context.DeadlineExceeded) {
		t.Fatalf("verdict %+v, want Unknown wrapping DeadlineExceeded", v)
	}
	if strings.Contains(v.Cause.Error(), codeRegular) {
		t.Errorf("cause %q holds the purchase code", v.Cause)
	}
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.envato.com", nil)
	tests := []struct {
		in, want string // want "" = refused
	}{
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
	}
	for _, tt := range tests {
		got, err := s.CanonicalKey(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, upstreams.ErrKeyFormat) || got != "" {
				t.Errorf("CanonicalKey(%q) = %q, %v; want an ErrKeyFormat refusal", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalKey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	ok := Config{BaseURL: "https://api.envato.com", Token: token, Products: products}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error
	}{
		{"no base_url", func(c *Config) { c.BaseURL = "" }, "base_url is required"},
		{"relative base_url", func(c *Config) { c.BaseURL = "api.envato.com" }, "base_url"},
		{"ftp base_url", func(c *Config) { c.BaseURL = "ftp://api.envato.com" }, "base_url"},
		{"base_url without host", func(c *Config) { c.BaseURL = "https:///v3" }, "base_url"},
		{"base_url with query", func(c *Config) { c.BaseURL = "https://api.envato.com/?x=1" }, "base_url"},
		{"unparseable base_url", func(c *Config) { c.BaseURL = "https://api.envato.com/%zz" }, "base_url"},
		{"no token", func(c *Config) { c.Token = "" }, "token is required"},
		{"blank token", func(c *Config) { c.Token = " \n" }, "token is required"},
		{"token with a space", func(c *Config) { c.Token = "s6Isc WrJL3" }, "token contains"},
		{"token with non-ASCII", func(c *Config) { c.Token = "s6Isc\u2013WrJL3" }, "token contains"},
		{"negative max body", func(c *Config) { c.MaxBody = -1 }, "max_body"},
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
	if s.Name() != "envato" || s.maxBody != upstreams.DefaultMaxBody || s.client == nil || s.now == nil {
		t.Errorf("defaults not applied: %+v", s)
	}
	if s.client.Timeout != 0 {
		t.Errorf("default client has its own timeout %s", s.client.Timeout)
	}
	if s, err := New(Config{BaseURL: "http://127.0.0.1:8080/", Token: "  " + token + "\n"}); err != nil || s.auth != "Bearer "+token {
		t.Errorf("a token with a trailing newline ({file.*}) was not trimmed: %v", err)
	}
}

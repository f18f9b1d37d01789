package apptrovo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const (
	keyStandard = "5b0c7d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1e"
	keyOther    = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"
)

// The documented answers (seeds/001).
const (
	validStandard = `{
"valid": true,
"license_id": 142,
"product_id": 28,
"product": {
"id": 28,
"slug": "your-product-slug",
"name": "Your Product",
"retired": false
},
"license_type": "standard",
"licensed_to": "Acme Corp",
"domain": "acme.com",
"expires_at": null,
"support_expires_at": "2027-04-08T00:00:00Z",
"support_active": true,
"activations_used": 1,
"activations_limit": 3,
"failure_reason": null
}`
	invalidQuickStart = `{
"valid": false,
"failure_reason": "Invalid license key."
}`
)

// failureBody is a documented valid=false answer with reason.
func failureBody(reason string) string {
	return `{"valid": false, "failure_reason": ` + strconv.Quote(reason) + `}`
}

// A retired product: the licence keeps verifying.
var validRetired = strings.Replace(validStandard, `"retired": false`, `"retired": true`, 1)

// A developer test licence: 30-day expiry, 5 slots, local domains only.
const validDeveloper = `{
"valid": true, "license_id": 7, "product_id": 28,
"product": {"id": 28, "slug": "your-product-slug", "name": "Your Product", "retired": false},
"license_type": "developer", "licensed_to": "Author Name", "domain": "localhost",
"expires_at": "2026-03-31T09:15:00Z", "support_expires_at": null, "support_active": false,
"activations_used": 2, "activations_limit": 5, "failure_reason": null
}`

// Another author's product on AppTrovo (the API is public).
var validForeign = strings.Replace(validStandard, `"slug": "your-product-slug"`, `"slug": "someone-elses-app"`, 1)

type reply struct {
	status int
	body   string
	header map[string]string
}

// want is what the fake expects to be asked.
type want struct {
	slug   string // "" = product_slug must be absent
	domain string // "" = domain must be absent
}

// fake is the AppTrovo verify API: it asserts each request, answers by
// (license_key, product_slug) and applies the documented 120 requests a
// minute per IP, answering 429 past it.
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]reply // by key + "|" + product_slug
	want    want
	limit   int
	window  time.Time
	count   map[string]int // by client IP, this window
	hits    atomic.Int32
}

func newFake(t *testing.T, w want, replies map[string]reply) *fake {
	f := &fake{t: t, replies: replies, want: w, limit: 120, count: map[string]int{}}
	f.srv = upstreamtest.NewServer(t, f.serve)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	t := f.t
	if r.Method != http.MethodGet {
		t.Errorf("method %s, want GET", r.Method)
	}
	if r.URL.Path != "/api/v1/licenses/verify" {
		t.Errorf("path %q, want /api/v1/licenses/verify", r.URL.Path)
	}
	if got := r.Header.Get("User-Agent"); got != upstreams.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, upstreams.UserAgent)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q sent to a public API", got)
	}
	q := r.URL.Query()
	for k, v := range q {
		switch k {
		case "license_key", "product_slug", "domain":
			if len(v) != 1 {
				t.Errorf("%s given %d times", k, len(v))
			}
		default:
			t.Errorf("undocumented parameter %q", k)
		}
	}
	key := q.Get("license_key")
	if key == "" || key != strings.ToLower(key) || len(key) > 64 {
		t.Errorf("license_key %q is not a canonical UUID", key)
	}
	f.mu.Lock()
	wantSlug, wantDomain := f.want.slug, f.want.domain
	f.mu.Unlock()
	if _, sent := q["product_slug"]; sent != (wantSlug != "") {
		t.Errorf("product_slug sent=%v, want sent=%v", sent, wantSlug != "")
	}
	if wantSlug != "*" && wantSlug != "" && q.Get("product_slug") != wantSlug {
		t.Errorf("product_slug %q, want %q", q.Get("product_slug"), wantSlug)
	}
	if _, sent := q["domain"]; sent != (wantDomain != "") || q.Get("domain") != wantDomain {
		t.Errorf("domain %q (sent=%v), want %q", q.Get("domain"), sent, wantDomain)
	}
	if retry, ok := f.throttle(r); !ok {
		// what Laravel's throttle middleware answers
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(f.limit))
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"message":"Too Many Attempts."}`))
		return
	}
	a, ok := f.replies[key+"|"+q.Get("product_slug")]
	if !ok {
		a = reply{status: 200, body: failureBody("Invalid license key for this product.")}
		if q.Get("product_slug") == "" {
			a.body = invalidQuickStart
		}
	}
	upstreamtest.Write(w, a.status, a.header, a.body, "application/json")
}

// throttle counts requests per client IP in one-minute windows.
func (f *fake) throttle(r *http.Request) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.window) >= time.Minute {
		f.window, f.count = now, map[string]int{}
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	f.count[ip]++
	if f.count[ip] > f.limit {
		return int((time.Minute - now.Sub(f.window)).Seconds()) + 1, false
	}
	return 0, true
}

var products = upstreams.ProductMap{
	{Product: "converter-pro", VendorID: "your-product-slug"},
	{Product: "blog-kit", VendorID: "blog-kit"},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Products: products, Client: upstreams.Client{Now: func() time.Time { return now }}}, mod)
}

var standardRecord = upstreams.Record{
	Product: "converter-pro", Type: "standard", LicensedTo: "Acme Corp",
	SupportUntil: upstreamtest.Time("2027-04-08T00:00:00Z"), ActivationsLimit: 3,
}

func TestVerify(t *testing.T) {
	withRetired := standardRecord
	withRetired.Retired = true
	tests := []struct {
		name    string
		product string // req.Product; "" = the key's product is resolved by AppTrovo
		domain  string
		reply   reply
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
		cause   func(error) bool
		retry   time.Duration
	}{
		{
			name:    "valid, product named",
			product: "converter-pro", domain: "acme.com",
			reply:   reply{status: 200, body: validStandard},
			outcome: upstreams.Valid, record: standardRecord,
		},
		{
			name:    "valid, product resolved from the key",
			domain:  "acme.com",
			reply:   reply{status: 200, body: validStandard},
			outcome: upstreams.Valid, record: standardRecord,
		},
		{
			name:    "valid, no domain sent",
			product: "converter-pro",
			reply:   reply{status: 200, body: validStandard},
			outcome: upstreams.Valid, record: standardRecord,
		},
		{
			name:    "retired product still verifies",
			product: "converter-pro", domain: "acme.com",
			reply:   reply{status: 200, body: validRetired},
			outcome: upstreams.Valid, record: withRetired,
		},
		{
			name:    "developer licence on a local domain",
			product: "converter-pro", domain: "localhost",
			reply:   reply{status: 200, body: validDeveloper},
			outcome: upstreams.Valid,
			record: upstreams.Record{
				Product: "converter-pro", Type: "developer", LicensedTo: "Author Name",
				ExpiresAt: upstreamtest.Time("2026-03-31T09:15:00Z"), ActivationsLimit: 5,
			},
		},
		{
			name:    "license_type upper-case is lower-cased",
			product: "converter-pro",
			reply:   reply{status: 200, body: strings.Replace(validStandard, `"standard"`, `"Standard"`, 1)},
			outcome: upstreams.Valid, record: standardRecord,
		},
		{
			name:    "nullable fields null",
			product: "converter-pro",
			reply: reply{status: 200, body: `{"valid":true,"product":{"id":28,"slug":"your-product-slug","name":"Your Product","retired":false},
"license_type":null,"licensed_to":null,"domain":null,"expires_at":null,"support_expires_at":null,"support_active":false,
"activations_used":0,"activations_limit":null,"failure_reason":null}`},
			outcome: upstreams.Valid, record: upstreams.Record{Product: "converter-pro"},
		},
		{
			name:    "valid without product object, slug enforced by the server",
			product: "converter-pro",
			reply:   reply{status: 200, body: `{"valid":true,"license_type":"standard","licensed_to":"Acme Corp","expires_at":null,"support_expires_at":"2027-04-08T00:00:00+02:00","activations_limit":3,"failure_reason":null}`},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro", Type: "standard", LicensedTo: "Acme Corp", SupportUntil: upstreamtest.Time("2027-04-07T22:00:00Z"), ActivationsLimit: 3},
		},
		{
			name:    "another author's product, asked without a slug",
			reply:   reply{status: 200, body: validForeign},
			outcome: upstreams.Invalid, reason: upstreams.WrongProduct,
		},
		{
			name:    "another of our products, asked without a slug",
			reply:   reply{status: 200, body: strings.Replace(validStandard, `"slug": "your-product-slug"`, `"slug": "blog-kit"`, 1)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "blog-kit", Type: "standard", LicensedTo: "Acme Corp", SupportUntil: upstreamtest.Time("2027-04-08T00:00:00Z"), ActivationsLimit: 3},
		},

		// documented failure reasons
		{name: "invalid key (quick-start wording)", reply: reply{status: 200, body: invalidQuickStart}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "invalid key for this product", product: "converter-pro", reply: reply{status: 200, body: failureBody("Invalid license key for this product.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "invalid key for this product, no slug sent", reply: reply{status: 200, body: failureBody("Invalid license key for this product.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "deactivated", product: "converter-pro", reply: reply{status: 200, body: failureBody("License has been deactivated.")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "expired", product: "converter-pro", reply: reply{status: 200, body: failureBody("License has expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "expired, no slug sent", reply: reply{status: 200, body: failureBody("License has expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{
			name:    "expired, no slug sent, answer names another author's product",
			reply:   reply{status: 200, body: `{"valid":false,"product":{"id":9,"slug":"someone-elses-app","retired":false},"failure_reason":"License has expired."}`},
			outcome: upstreams.Invalid, reason: upstreams.WrongProduct,
		},
		{
			name:    "deactivated, no slug sent, answer names our product",
			reply:   reply{status: 200, body: `{"valid":false,"product":{"id":28,"slug":"your-product-slug","retired":false},"failure_reason":"License has been deactivated."}`},
			outcome: upstreams.Invalid, reason: upstreams.Revoked,
		},
		{name: "registered to a different domain", product: "converter-pro", domain: "other.example", reply: reply{status: 200, body: failureBody("License is registered to a different domain.")}, outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed},
		{
			name:    "developer licence on a public domain",
			product: "converter-pro", domain: "example.com",
			reply:   reply{status: 200, body: failureBody("This is a developer license and can only activate on local domains (localhost, 127.0.0.1, ::1, *.test, *.local, *.localhost).")},
			outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed,
		},
		{
			name:    "developer licence refusal as printed in the seed",
			product: "converter-pro", domain: "example.com",
			reply:   reply{status: 200, body: failureBody("This is a developer license and can only activate on local domains...")},
			outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed,
		},
		{name: "reason spacing and case", product: "converter-pro", reply: reply{status: 200, body: failureBody("  license HAS expired ")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "failure with HTTP 404", product: "converter-pro", reply: reply{status: 404, body: failureBody("Invalid license key for this product.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "failure with HTTP 403", product: "converter-pro", domain: "other.example", reply: reply{status: 403, body: failureBody("License is registered to a different domain.")}, outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed},

		// failures that are not the buyer's
		{
			name:    "product not found: the author's slug is wrong",
			product: "converter-pro",
			reply:   reply{status: 200, body: failureBody("Product not found.")},
			outcome: upstreams.Unknown,
			cause: func(err error) bool {
				return errors.Is(err, ErrUnknownSlug) && strings.Contains(err.Error(), "your-product-slug")
			},
		},
		{
			name:    "product not found with HTTP 404",
			product: "converter-pro",
			reply:   reply{status: 404, body: failureBody("Product not found.")},
			outcome: upstreams.Unknown,
			cause:   func(err error) bool { return errors.Is(err, ErrUnknownSlug) },
		},
		{name: "product not found without a slug sent", reply: reply{status: 200, body: failureBody("Product not found.")}, outcome: upstreams.Unknown},
		{
			name:    "slots exhausted: wording undocumented",
			product: "converter-pro", domain: "sixth.test",
			reply:   reply{status: 200, body: failureBody("Activation limit reached. Please deactivate an existing activation first.")},
			outcome: upstreams.Unknown,
		},
		{name: "the SDK's own network failure sentence", product: "converter-pro", reply: reply{status: 200, body: failureBody("Unable to reach license server.")}, outcome: upstreams.Unknown},
		{name: "unknown reason", product: "converter-pro", reply: reply{status: 200, body: failureBody("License is suspended pending review.")}, outcome: upstreams.Unknown},
		{name: "valid false without a reason", product: "converter-pro", reply: reply{status: 200, body: `{"valid":false,"failure_reason":null}`}, outcome: upstreams.Unknown},
		{name: "valid false, empty reason", product: "converter-pro", reply: reply{status: 200, body: `{"valid":false,"failure_reason":""}`}, outcome: upstreams.Unknown},

		// answers that cannot be classified
		{name: "no valid field", product: "converter-pro", reply: reply{status: 200, body: `{"license_type":"standard"}`}, outcome: upstreams.Unknown},
		{name: "valid as a string", product: "converter-pro", reply: reply{status: 200, body: `{"valid":"true"}`}, outcome: upstreams.Unknown},
		{name: "valid with a failure_reason", product: "converter-pro", reply: reply{status: 200, body: strings.Replace(validStandard, `"failure_reason": null`, `"failure_reason": "License has expired."`, 1)}, outcome: upstreams.Unknown},
		{name: "valid for another slug than asked", product: "converter-pro", reply: reply{status: 200, body: validForeign}, outcome: upstreams.Unknown},
		{name: "valid naming no product, none asked", reply: reply{status: 200, body: `{"valid":true,"license_type":"standard"}`}, outcome: upstreams.Unknown},
		{name: "valid with HTTP 403", product: "converter-pro", reply: reply{status: 403, body: validStandard}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 403)},
		{name: "expires_at unreadable", product: "converter-pro", reply: reply{status: 200, body: strings.Replace(validDeveloper, "2026-03-31T09:15:00Z", "in 30 days", 1)}, outcome: upstreams.Unknown},
		{name: "support_expires_at unreadable", product: "converter-pro", reply: reply{status: 200, body: strings.Replace(validStandard, "2027-04-08T00:00:00Z", "soon", 1)}, outcome: upstreams.Unknown},
		{name: "negative activations_limit", product: "converter-pro", reply: reply{status: 200, body: strings.Replace(validStandard, `"activations_limit": 3`, `"activations_limit": -1`, 1)}, outcome: upstreams.Unknown},
		{name: "fractional activations_limit", product: "converter-pro", reply: reply{status: 200, body: strings.Replace(validStandard, `"activations_limit": 3`, `"activations_limit": 2.5`, 1)}, outcome: upstreams.Unknown},
		{name: "422 validation error", product: "converter-pro", reply: reply{status: 422, body: `{"message":"The license key field must not be greater than 64 characters.","errors":{"license_key":["The license key field must not be greater than 64 characters."]}}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 422)},
		{name: "404 HTML", product: "converter-pro", reply: reply{status: 404, body: `<html>Not Found</html>`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 404)},
		{name: "401", product: "converter-pro", reply: reply{status: 401, body: `{"message":"Unauthenticated."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 401)},
		{name: "301", product: "converter-pro", reply: reply{status: 301, body: ``}, outcome: upstreams.Unknown, cause: upstreamtest.IsRedirect(301)},
		{name: "500 with a documented failure", product: "converter-pro", reply: reply{status: 500, body: failureBody("License has expired.")}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := want{domain: tt.domain}
			slug := ""
			if tt.product != "" {
				w.slug = products.For(tt.product)[0].VendorID
				slug = w.slug
			}
			f := newFake(t, w, map[string]reply{keyStandard + "|" + slug: tt.reply})
			s := newSource(t, f.srv.URL, nil)
			v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Product: tt.product, Domain: tt.domain, IP: "203.0.113.7"})
			if f.hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", f.hits.Load())
			}
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, keyStandard, tt.cause, tt.retry)
		})
	}
}

// TestRateLimit: the 121st request in a minute from one IP is refused with
// 429 and Retry-After; the adapter answers Unknown and honours it.
func TestRateLimit(t *testing.T) {
	f := newFake(t, want{slug: "your-product-slug", domain: "acme.com"}, map[string]reply{
		keyStandard + "|your-product-slug": {status: 200, body: validStandard},
	})
	s := newSource(t, f.srv.URL, func(c *Config) { c.Client.Now = time.Now })
	req := upstreams.Request{Key: keyStandard, Product: "converter-pro", Domain: "acme.com"}
	for i := 0; i < 120; i++ {
		if v := s.Verify(context.Background(), req); v.Outcome != upstreams.Valid {
			t.Fatalf("request %d: %s (%v), want valid within the limit", i+1, v.Outcome, v.Cause)
		}
	}
	v := s.Verify(context.Background(), req)
	if v.Outcome != upstreams.Unknown || v.RetryAfter <= 0 || v.RetryAfter > time.Minute {
		t.Fatalf("121st request: %+v, want Unknown with a Retry-After within a minute", v)
	}
	if !upstreamtest.IsRateLimit(Name, v.RetryAfter)(v.Cause) {
		t.Errorf("cause %v is not a RateLimitError", v.Cause)
	}
}

// TestVerifySeveralSlugs: a product sold under two AppTrovo slugs; a key
// unknown for the first is asked about the second.
func TestVerifySeveralSlugs(t *testing.T) {
	m := upstreams.ProductMap{
		{Product: "converter-pro", VendorID: "converter-pro-v1"},
		{Product: "blog-kit", VendorID: "blog-kit"},
		{Product: "converter-pro", VendorID: "your-product-slug"},
	}
	tests := []struct {
		name    string
		replies map[string]reply
		hits    int32
		outcome upstreams.Outcome
		reason  upstreams.Reason
	}{
		{"found under the second", map[string]reply{keyStandard + "|your-product-slug": {status: 200, body: validStandard}}, 2, upstreams.Valid, ""},
		{"found under the first", map[string]reply{keyStandard + "|converter-pro-v1": {status: 200, body: strings.Replace(validStandard, "your-product-slug", "converter-pro-v1", 1)}}, 1, upstreams.Valid, ""},
		{"unknown under both", nil, 2, upstreams.Invalid, upstreams.NotFound},
		{"expired under the first is final", map[string]reply{keyStandard + "|converter-pro-v1": {status: 200, body: failureBody("License has expired.")}}, 1, upstreams.Invalid, upstreams.Expired},
		{"first slug misconfigured, found under the second", map[string]reply{
			keyStandard + "|converter-pro-v1":  {status: 200, body: failureBody("Product not found.")},
			keyStandard + "|your-product-slug": {status: 200, body: validStandard},
		}, 2, upstreams.Valid, ""},
		{"first slug misconfigured, unknown under the second", map[string]reply{
			keyStandard + "|converter-pro-v1": {status: 200, body: failureBody("Product not found.")},
		}, 2, upstreams.Unknown, ""},
		{"rate limited on the first stops", map[string]reply{
			keyStandard + "|converter-pro-v1": {status: 429, header: map[string]string{"Retry-After": "30"}},
		}, 1, upstreams.Unknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, want{slug: "*"}, tt.replies)
			s := newSource(t, f.srv.URL, func(c *Config) { c.Products = m })
			v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Product: "converter-pro"})
			if v.Outcome != tt.outcome || v.Reason != tt.reason {
				t.Fatalf("verdict %s/%q (%v), want %s/%q", v.Outcome, v.Reason, v.Cause, tt.outcome, tt.reason)
			}
			if v.Outcome == upstreams.Valid && v.Record.Product != "converter-pro" {
				t.Errorf("Product %q", v.Record.Product)
			}
			if got := f.hits.Load(); got != tt.hits {
				t.Errorf("%d requests, want %d", got, tt.hits)
			}
		})
	}
}

// TestVerifyNoMapping: a product without an apptrovo_slug is the author's
// configuration gap; nothing is asked and nothing is decided.
func TestVerifyNoMapping(t *testing.T) {
	f := newFake(t, want{}, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Product: "not-on-apptrovo"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, errNoMapping) {
		t.Fatalf("verdict %+v, want Unknown for the missing apptrovo_slug", v)
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests for an unmapped product", f.hits.Load())
	}
}

// TestVerifyCanonicalKey: the key is sent lower-case and trimmed even if
// the caller skipped CanonicalKey.
func TestVerifyCanonicalKey(t *testing.T) {
	f := newFake(t, want{slug: "your-product-slug"}, map[string]reply{keyStandard + "|your-product-slug": {status: 200, body: validStandard}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: "\t" + strings.ToUpper(keyStandard) + " ", Product: "converter-pro"})
	upstreamtest.CheckVerdict(t, v, upstreams.Valid, "", standardRecord)
}

func TestVerifyLongDomain(t *testing.T) {
	f := newFake(t, want{}, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Domain: strings.Repeat("a", 256)})
	if v.Outcome != upstreams.Unknown || f.hits.Load() != 0 {
		t.Fatalf("verdict %+v after %d requests, want Unknown without asking", v, f.hits.Load())
	}
}

func TestVerifyBaseURLPathPrefix(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(validStandard))
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/mirror/", nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Product: "converter-pro"})
	if v.Outcome != upstreams.Valid || path != "/mirror/api/v1/licenses/verify" {
		t.Fatalf("outcome %s, path %q", v.Outcome, path)
	}
}

// TestOutages: outages, rate limits and unreadable answers are Unknown,
// and no cause quotes the key, whether or not a product slug is sent.
func TestOutages(t *testing.T) {
	for _, product := range []string{"", "converter-pro"} {
		t.Run("product="+product, func(t *testing.T) {
			upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
				return newSource(t, o.BaseURL, func(c *Config) { c.Client = o.UpstreamClient() })
			}, upstreams.Request{Key: keyStandard, Product: product, Domain: "acme.com"})
		})
	}
}

// TestFailureReasonKeepsKeyOut: an unrecognised sentence is quoted in the
// cause, without the key should AppTrovo echo it.
func TestFailureReasonKeepsKeyOut(t *testing.T) {
	f := newFake(t, want{slug: "your-product-slug"}, map[string]reply{
		keyStandard + "|your-product-slug": {status: 200, body: failureBody("Key " + strings.ToUpper(keyStandard) + " / " + keyStandard + " is on hold. " + strings.Repeat("x", 300))},
	})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyStandard, Product: "converter-pro"})
	if v.Outcome != upstreams.Unknown {
		t.Fatalf("outcome %s", v.Outcome)
	}
	msg := strings.ToLower(v.Cause.Error())
	if strings.Contains(msg, keyStandard) || len(msg) > 300 {
		t.Errorf("cause %q holds the key or is unbounded", v.Cause)
	}
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://apptrovo.com", nil)
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{keyStandard, keyStandard},
		{strings.ToUpper(keyStandard), keyStandard},
		{" \t" + keyStandard + "\r\n", keyStandard},
		{"\u200b" + keyStandard + "\ufeff", keyStandard},
		{"", ""},
		{keyStandard[:35], ""},
		{keyStandard + "f", ""},
		{strings.ReplaceAll(keyStandard, "-", ""), ""},
		{"5b0c7d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1z", ""},
		{"5b0c7d1e2-f3a-4b4c-8d5e-6f7a8b9c0d1e", ""},
		{"5b0c7d1e-2f3a-4b4c-8d5e\t6f7a8b9c0d1e", ""},
		{"5b0c7d1e\u20122f3a-4b4c-8d5e-6f7a8b9c0d1e", ""}, // figure dash
		{"5b0c7d1e\u22122f3a-4b4c-8d5e-6f7a8b9c0d1e", ""}, // minus sign
		{"5b0c7d1\u04352f3a-4b4c-8d5e-6f7a8b9c0d1e", ""},  // Cyrillic e
		{"5b0c7d1e-2f3a-4b4c-8d5e-6f7a8b9c0d1\uff45", ""}, // full-width e
		{"CP-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", ""},
		{strings.Repeat("a", 64), ""},
	})
}

func TestNew(t *testing.T) {
	ok := Config{BaseURL: "https://apptrovo.com", Products: products}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"base_url with user info", func(c *Config) { c.BaseURL = "https://u:p@apptrovo.com" }, "base_url"},
		{"negative max body", func(c *Config) { c.Client.MaxBody = -5 }, "max_body"},
		{"empty slug", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: ""}} }, "apptrovo_slug is empty"},
		{"slug with a space", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: "my product"}} }, "apptrovo_slug"},
		{"slug non-ASCII", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: "my\u2013product"}} }, "apptrovo_slug"},
		{"slug too long", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "p", VendorID: strings.Repeat("s", 256)}} }, "longer than 255"},
		{"empty product", func(c *Config) { c.Products = upstreams.ProductMap{{Product: "", VendorID: "s"}} }, "product slug is empty"},
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
		})
	}
	s, err := New(ok)
	if err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	if s.Name() != "apptrovo" || s.client.MaxBody != upstreams.DefaultMaxBody || s.client.HTTP == nil || s.client.HTTP.Timeout != 0 || s.client.Now == nil {
		t.Errorf("defaults not applied: %+v", s)
	}
	if _, err := New(Config{BaseURL: "https://mp.chetsapp.de/"}); err != nil {
		t.Errorf("the test environment with no products: %v", err)
	}
}

func TestNewBaseURL(t *testing.T) {
	upstreamtest.RunBaseURLCases(t, func(baseURL string) error {
		_, err := New(Config{BaseURL: baseURL, Products: products})
		return err
	})
}

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
// an instance since the gateway never sends instance_id.
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
    "expires_at": "2022-01-24T14:15:07.000000Z",
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
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
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
	{Product: "example", VendorID: "4"},
	{Product: "other", VendorID: "44"},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	cfg := Config{BaseURL: base, Products: products, Now: func() time.Time { return now }}
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
	exampleActive := upstreams.Record{
		Product: "example", Type: "example-variant", LicensedTo: "Luke Skywalker",
		ExpiresAt: tp("2022-01-24T14:15:07Z"), ActivationsLimit: 1,
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
			record:  upstreams.Record{Product: "example", LicensedTo: "leia@organa.dev"},
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
				ExpiresAt: tp("2022-01-24T14:15:07Z"), ActivationsLimit: 1},
		},
		{
			name:    "another mapped product",
			answer:  answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 44`, 1)},
			outcome: upstreams.Valid,
			record: upstreams.Record{Product: "other", Type: "example-variant", LicensedTo: "Luke Skywalker",
				ExpiresAt: tp("2022-01-24T14:15:07Z"), ActivationsLimit: 1},
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
			cause:   statusError(422),
		},
		{
			name:    "429 with Retry-After seconds (60 requests a minute)",
			answer:  answer{status: 429, body: `{"message":"Too Many Attempts."}`, header: map[string]string{"Retry-After": "30"}},
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
		{name: "401 from a proxy", answer: answer{status: 401, body: `{"error":"Unauthenticated."}`}, outcome: upstreams.Unknown, cause: statusError(401)},
		{name: "500", answer: answer{status: 500, body: `{"error":"Server Error"}`}, outcome: upstreams.Unknown, cause: statusError(500)},
		{name: "502", answer: answer{status: 502, body: "bad gateway"}, outcome: upstreams.Unknown, cause: statusError(502)},
		{name: "503", answer: answer{status: 503, header: map[string]string{"Retry-After": "120"}}, outcome: upstreams.Unknown, cause: statusError(503)},
		{name: "204", answer: answer{status: 204}, outcome: upstreams.Unknown, cause: statusError(204)},
		{name: "unparseable JSON", answer: answer{status: 200, body: `{"valid": true, "license_key": {`}, outcome: upstreams.Unknown},
		{name: "HTML with 200", answer: answer{status: 200, body: "<html>maintenance</html>"}, outcome: upstreams.Unknown},
		{name: "null", answer: answer{status: 200, body: "null"}, outcome: upstreams.Unknown},
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
			answer:  answer{status: 200, body: strings.Replace(validActive, "2022-01-24T14:15:07.000000Z", "next year", 1)},
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
			checkVerdict(t, v, tt.outcome, tt.reason, tt.record)
			if tt.outcome == upstreams.Unknown {
				if v.Cause == nil {
					t.Fatal("Unknown without a cause")
				}
				if tt.cause != nil && !tt.cause(v.Cause) {
					t.Errorf("cause %v (%T) is not the expected kind", v.Cause, v.Cause)
				}
				if strings.Contains(v.Cause.Error(), keyActive) {
					t.Errorf("cause %q holds the licence key", v.Cause)
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
	if got.ExpiresAt != nil && got.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt %v is not in UTC", got.ExpiresAt)
	}
	if !sameTime(got.SupportUntil, rec.SupportUntil) {
		t.Errorf("SupportUntil %v, want %v", got.SupportUntil, rec.SupportUntil)
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

func statusError(status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.StatusError
		return errors.As(err, &e) && e.Status == status && e.Source == Name
	}
}

func rateLimited(d time.Duration) func(error) bool {
	return func(err error) bool {
		var e *upstreams.RateLimitError
		return errors.As(err, &e) && e.RetryAfter == d && e.Source == Name
	}
}

// TestVerifyUnknownKey: the fake's default answer is the documented 404.
func TestVerifyUnknownKey(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyUnknown})
	checkVerdict(t, v, upstreams.Invalid, upstreams.NotFound, upstreams.Record{})
}

// TestVerifyCanonicalKey: the key is sent lower-case and trimmed even if
// the caller skipped CanonicalKey.
func TestVerifyCanonicalKey(t *testing.T) {
	f := newFake(t, map[string]answer{keyActive: {status: 200, body: validInactive}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: " " + strings.ToUpper(keyActive) + "\n"})
	checkVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "example", LicensedTo: "leia@organa.dev"})
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

func TestVerifyBodyTooLarge(t *testing.T) {
	for _, announced := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body := `{"valid": true, "padding": "` + strings.Repeat("x", 4096) + `"}`
			if !announced {
				w.Header().Set("Transfer-Encoding", "chunked")
				w.(http.Flusher).Flush()
			}
			_, _ = w.Write([]byte(body))
		}))
		s := newSource(t, srv.URL, func(c *Config) { c.MaxBody = 1024 })
		v := s.Verify(context.Background(), upstreams.Request{Key: keyActive})
		srv.Close()
		if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, upstreams.ErrBodyTooLarge) {
			t.Errorf("announced=%v: verdict %+v, want Unknown with ErrBodyTooLarge", announced, v)
		}
	}
}

func TestVerifyConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	s := newSource(t, base, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyActive})
	if v.Outcome != upstreams.Unknown || v.Cause == nil {
		t.Fatalf("verdict %+v, want Unknown with a cause", v)
	}
	if strings.Contains(v.Cause.Error(), keyActive) {
		t.Errorf("cause %q holds the licence key", v.Cause)
	}
}

func TestVerifyCancelled(t *testing.T) {
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
	v := s.Verify(ctx, upstreams.Request{Key: keyActive})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, context.DeadlineExceeded) {
		t.Fatalf("verdict %+v, want Unknown wrapping context.DeadlineExceeded", v)
	}
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
	tests := []struct {
		in, want string
	}{
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
	}
	for _, tt := range tests {
		got, err := s.CanonicalKey(tt.in)
		if tt.want == "" {
			if err == nil || !errors.Is(err, upstreams.ErrKeyFormat) {
				t.Errorf("CanonicalKey(%q) = %q, %v; want an ErrKeyFormat error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalKey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" when accepted
	}{
		{"ok", Config{BaseURL: "https://api.lemonsqueezy.com", Products: products}, ""},
		{"no products", Config{BaseURL: "https://api.lemonsqueezy.com"}, ""},
		{"http for tests", Config{BaseURL: "http://127.0.0.1:8080/"}, ""},
		{"no base_url", Config{}, "base_url is required"},
		{"blank base_url", Config{BaseURL: "  "}, "base_url is required"},
		{"relative base_url", Config{BaseURL: "api.lemonsqueezy.com"}, "base_url"},
		{"ftp base_url", Config{BaseURL: "ftp://api.lemonsqueezy.com"}, "base_url"},
		{"base_url without host", Config{BaseURL: "https://"}, "base_url"},
		{"base_url with query", Config{BaseURL: "https://api.lemonsqueezy.com/?x=1"}, "base_url"},
		{"base_url unparseable", Config{BaseURL: "https://api.lemon squeezy.com/%zz"}, "base_url"},
		{"negative max body", Config{BaseURL: "https://api.lemonsqueezy.com", MaxBody: -1}, "max_body"},
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

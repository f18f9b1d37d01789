package digitaldownloads

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const (
	tokA = "93cf9a0fcbd6fd94448c16ed71eb81ff" // converter-pro
	tokB = "0123456789abcdef0123456789abcdef" // blog-scraper
	key  = "85DB262A-C19D4B06-A5335A6B-8C079166"
)

var products = upstreams.ProductMap{
	{Product: "converter-pro", VendorID: tokA},
	{Product: "blog-scraper", VendorID: tokB},
}

// body builds the documented 200 body (seeds/002) for tok with the fields
// that decide the verdict.
func body(tok string, valid bool, disabledAt, assignedAt, status string) string {
	null := func(s string) string {
		if s == "" {
			return "null"
		}
		return `"` + s + `"`
	}
	v := "false"
	if valid {
		v = "true"
	}
	return `{
"valid": ` + v + `,
"disabled_at": ` + null(disabledAt) + `,
"uses": 29,
"license_key": "` + key + `",
"license_key_list_token": "` + tok + `",
"assigned_at": ` + null(assignedAt) + `,
"created_at": "2021-01-05T20:09:27Z",
"order": {
"status": "` + status + `",
"shopify_id": 1234567890,
"id": 1234567890,
"email": "buyer@example.com",
"created_at": "2021-02-05T20:09:27Z",
"line_item": {
"id": 1234567890,
"shopify_id": 1234567890
}
}
}`
}

const assigned = "2021-02-05T20:09:27Z"

// docValid is the documented success body verbatim, with the line_item keys
// unquoted as printed: not JSON.
const docValid = `{
"valid": true,
"disabled_at": null,
"uses": 29,
"license_key": "85DB262A-C19D4B06-A5335A6B-8C079166",
"license_key_list_token": "93cf9a0fcbd6fd94448c16ed71eb81ff",
"assigned_at": "2021-02-05T20:09:27Z",
"created_at": "2021-01-05T20:09:27Z",
"order": {
"status": "delivered",
"shopify_id": 1234567890,
"id": 1234567890,
"email": "buyer@example.com",
"created_at": "2021-02-05T20:09:27Z",
"line_item": {
id: 1234567890,
shopify_id: 1234567890
}
}
}`

type reply struct {
	status int
	body   string
	header map[string]string
}

// fake is the vendor: it checks every request and answers per list token
// (404 for a list it was not told about).
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]reply
	calls   []string
}

func newFake(t *testing.T, replies map[string]reply) *fake {
	f := &fake{t: t, replies: replies}
	f.srv = upstreamtest.NewServer(t, f.serve)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if r.URL.Path != "/v1/licenses/verify" {
		t.Errorf("path %q, want /v1/licenses/verify", r.URL.Path)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query %q: the key must travel in the form body only", r.URL.RawQuery)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := r.Header.Get("Accept"); a != "application/json" {
		t.Errorf("Accept %q", a)
	}
	if ua := r.Header.Get("User-Agent"); ua != upstreams.UserAgent {
		t.Errorf("User-Agent %q", ua)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		t.Errorf("Authorization %q sent; the API has none", auth)
	}
	if err := r.ParseForm(); err != nil {
		t.Errorf("form: %v", err)
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) != 1 {
			t.Errorf("form field %s given %d times", k, len(v))
		}
		switch k {
		case "license_key_list_token", "license_key", "increment_uses_count":
		default:
			t.Errorf("unexpected form field %s", k)
		}
	}
	if got := form.Get("increment_uses_count"); got != "false" {
		t.Errorf("increment_uses_count = %q, want \"false\": a check must never spend the buyer's uses", got)
	}
	if got := form.Get("license_key"); got != key {
		t.Errorf("license_key = %q, want %q", got, key)
	}
	tok := form.Get("license_key_list_token")
	f.mu.Lock()
	f.calls = append(f.calls, tok)
	rep, ok := f.replies[tok]
	f.mu.Unlock()
	if !ok {
		rep = reply{status: http.StatusNotFound, body: `{"error":"Not found"}`}
	}
	upstreamtest.Write(w, rep.status, rep.header, rep.body, "application/json")
}

func (f *fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func newSource(t *testing.T, base string, pm upstreams.ProductMap, mod ...func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Products: pm,
		Client: upstreams.Client{MaxBody: 4096, Now: func() time.Time { return time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC) }}}, mod...)
}

func TestVerify(t *testing.T) {
	ok := func(b string) reply { return reply{status: 200, body: b} }
	tests := []struct {
		name    string
		product string // req.Product
		pm      upstreams.ProductMap
		replies map[string]reply
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
		cause   func(error) bool // for Unknown; nil: any cause
		retry   time.Duration
		calls   []string
	}{
		{
			name:    "valid (documented body)",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, true, "", assigned, "delivered"))},
			outcome: upstreams.Valid,
			record: upstreams.Record{Product: "converter-pro", LicensedTo: "buyer@example.com",
				Refs: []upstreams.VendorID{{Kind: upstreams.IDOrder, ID: "1234567890"}}},
			calls: []string{tokA},
		},
		{
			name:    "valid without an order keeps LicensedTo empty",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(`{"valid":true,"disabled_at":null,"uses":0,"license_key":"` + key + `","assigned_at":"` + assigned + `"}`)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro"},
			calls:   []string{tokA},
		},
		{
			name:    "valid, vendor echoes the key in lower case",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(strings.Replace(body(tokA, true, "", assigned, "delivered"), key, strings.ToLower(key), 1))},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro", LicensedTo: "buyer@example.com"},
			calls:   []string{tokA},
		},
		{
			name:    "documented example verbatim is not JSON (unquoted line_item keys)",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(docValid)},
			outcome: upstreams.Unknown,
			calls:   []string{tokA},
		},
		{
			name:    "404 is not found",
			product: "converter-pro",
			replies: map[string]reply{tokA: {status: 404}},
			outcome: upstreams.Invalid, reason: upstreams.NotFound,
			calls: []string{tokA},
		},
		{
			name:    "404 HTML page from a proxy is not the API's answer",
			product: "converter-pro",
			replies: map[string]reply{tokA: {status: 404, body: "<html><body>Not Found</body></html>"}},
			outcome: upstreams.Unknown,
			calls:   []string{tokA},
		},
		{
			name:    "disabled (the disable endpoint's answer)",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "2021-03-05T20:09:27Z", assigned, "delivered"))},
			outcome: upstreams.Invalid, reason: upstreams.Disabled,
			calls: []string{tokA},
		},
		{
			name:    "disabled wins over a cancelled order",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "2021-03-05T20:09:27Z", assigned, "cancelled"))},
			outcome: upstreams.Invalid, reason: upstreams.Disabled,
		},
		{
			name:    "order cancelled",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "cancelled"))},
			outcome: upstreams.Invalid, reason: upstreams.Refunded,
		},
		{
			name:    "order canceled (US spelling)",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "Canceled"))},
			outcome: upstreams.Invalid, reason: upstreams.Refunded,
		},
		{
			name:    "order refunded",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "refunded"))},
			outcome: upstreams.Invalid, reason: upstreams.Refunded,
		},
		{
			name:    "order revoked",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "revoked"))},
			outcome: upstreams.Invalid, reason: upstreams.Revoked,
		},
		{
			name:    "order on-hold",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "on-hold"))},
			outcome: upstreams.Invalid, reason: upstreams.Suspended,
		},
		{
			name:    "order on_hold spelt otherwise",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "On_Hold"))},
			outcome: upstreams.Invalid, reason: upstreams.Suspended,
		},
		{
			name:    "delivered order, assigned, not disabled: the line item was refunded or removed",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "delivered"))},
			outcome: upstreams.Invalid, reason: upstreams.Refunded,
		},
		{
			name:    "never assigned to a buyer",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(`{"valid":false,"disabled_at":null,"uses":0,"license_key":"` + key + `","license_key_list_token":"` + tokA + `","assigned_at":null,"created_at":"2021-01-05T20:09:27Z","order":null}`)},
			outcome: upstreams.Invalid, reason: upstreams.NotFound,
		},
		{
			name:    "unrecognised order status",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, false, "", assigned, "pending"))},
			outcome: upstreams.Unknown,
		},
		{
			name:    "invalid, assigned, but no order",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(`{"valid":false,"disabled_at":null,"assigned_at":"` + assigned + `","order":null}`)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "valid yet disabled contradicts itself",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokA, true, "2021-03-05T20:09:27Z", assigned, "delivered"))},
			outcome: upstreams.Unknown,
		},
		{
			name:    "no valid flag",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(`{"disabled_at":null,"uses":3}`)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "valid flag of the wrong type",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(`{"valid":"true"}`)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "answer about another list",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(body(tokB, true, "", assigned, "delivered"))},
			outcome: upstreams.Unknown,
		},
		{
			name:    "answer about another key",
			product: "converter-pro",
			replies: map[string]reply{tokA: ok(strings.Replace(body(tokA, true, "", assigned, "delivered"), key, "00000000-00000000-00000000-00000000", 1))},
			outcome: upstreams.Unknown,
		},
		{
			name:    "422 is not the buyer's fault",
			product: "converter-pro",
			replies: map[string]reply{tokA: {status: 422, body: `{"error":"license_key_list_token is required"}`}},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(name, 422),
		},
		{
			name:    "401: the list token was refused",
			product: "converter-pro",
			replies: map[string]reply{tokA: {status: 401}},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(name, 401),
		},
		{
			name:    "403: the list token was refused",
			product: "converter-pro",
			replies: map[string]reply{tokA: {status: 403}},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(name, 403),
		},

		// Several lists.
		{
			name:    "no product: lists asked in order until one knows the key",
			replies: map[string]reply{tokB: ok(body(tokB, true, "", assigned, "delivered"))},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "blog-scraper", LicensedTo: "buyer@example.com"},
			calls:   []string{tokA, tokB},
		},
		{
			name:    "no product: the first list that knows the key decides",
			replies: map[string]reply{tokA: ok(body(tokA, false, "2021-03-05T20:09:27Z", assigned, "delivered")), tokB: ok(body(tokB, true, "", assigned, "delivered"))},
			outcome: upstreams.Invalid, reason: upstreams.Disabled,
			calls: []string{tokA},
		},
		{
			name:    "no product: not in any list",
			outcome: upstreams.Invalid, reason: upstreams.NotFound,
			calls: []string{tokA, tokB},
		},
		{
			name:    "product given: only its list is asked",
			product: "blog-scraper",
			replies: map[string]reply{tokA: ok(body(tokA, true, "", assigned, "delivered"))},
			outcome: upstreams.Invalid, reason: upstreams.NotFound,
			calls: []string{tokB},
		},
		{
			name:    "product with two lists",
			product: "converter-pro",
			pm:      upstreams.ProductMap{{Product: "converter-pro", VendorID: "old"}, {Product: "blog-scraper", VendorID: tokB}, {Product: "converter-pro", VendorID: tokA}},
			replies: map[string]reply{tokA: ok(body(tokA, true, "", assigned, "delivered"))},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "converter-pro", LicensedTo: "buyer@example.com"},
			calls:   []string{"old", tokA},
		},
		{
			name:    "a list that cannot answer does not hide a valid key in the next",
			replies: map[string]reply{tokA: {status: 503}, tokB: ok(body(tokB, true, "", assigned, "delivered"))},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "blog-scraper", LicensedTo: "buyer@example.com"},
			calls:   []string{tokA, tokB},
		},
		{
			name:    "a list that cannot answer wins over not found in the others",
			replies: map[string]reply{tokA: {status: 503}},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(name, 503),
			calls:   []string{tokA, tokB},
		},
		{
			name:    "a rate limit stops the search",
			replies: map[string]reply{tokA: {status: 429, header: map[string]string{"Retry-After": "30"}}, tokB: ok(body(tokB, true, "", assigned, "delivered"))},
			outcome: upstreams.Unknown,
			retry:   30 * time.Second,
			calls:   []string{tokA},
		},
		{
			name:    "a list shared by two products is asked once",
			pm:      upstreams.ProductMap{{Product: "converter-pro", VendorID: tokA}, {Product: "converter-bundle", VendorID: tokA}},
			outcome: upstreams.Invalid, reason: upstreams.NotFound,
			calls: []string{tokA},
		},
		{
			name:    "product without a list token: no call",
			product: "other",
			outcome: upstreams.Unknown,
			cause:   func(err error) bool { return errors.Is(err, ErrNoListToken) },
			calls:   []string{},
		},
		{
			name:    "no products configured: no call",
			pm:      upstreams.ProductMap{},
			outcome: upstreams.Unknown,
			cause:   func(err error) bool { return errors.Is(err, ErrNoListToken) },
			calls:   []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.replies)
			pm := products
			if tt.pm != nil {
				pm = tt.pm
			}
			s := newSource(t, f.srv.URL, pm)
			v := s.Verify(context.Background(), upstreams.Request{Key: key, Product: tt.product, Domain: "acme.com", IP: "203.0.113.7"})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, key, tt.cause, tt.retry)
			if tt.calls != nil && !slices.Equal(f.Calls(), tt.calls) {
				t.Errorf("lists asked %q, want %q", f.Calls(), tt.calls)
			}
		})
	}
}

// TestOutages: outages, rate limits and unreadable answers are Unknown,
// and no cause quotes the key.
func TestOutages(t *testing.T) {
	upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
		return newSource(t, o.BaseURL, products, func(c *Config) { c.Client = o.UpstreamClient() })
	}, upstreams.Request{Key: key, Product: "converter-pro"})
}

func TestBaseURLWithPath(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		w.WriteHeader(404)
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/proxy/", products)
	s.Verify(context.Background(), upstreams.Request{Key: key, Product: "converter-pro"})
	if path != "/proxy/v1/licenses/verify" {
		t.Fatalf("path %q", path)
	}
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.digitaldownloadsapp.com", products)
	if s.Name() != "digitaldownloads" {
		t.Fatalf("Name %q", s.Name())
	}
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{key, key},
		{"85db262a-c19d4b06-a5335a6b-8c079166", key},
		{"85dB262A-c19D4B06-A5335a6b-8C079166", key},
		{"  " + key + "\n", key},
		{"\ufeff" + key + "\u200b", key},
		{"\u00a0" + key + "\u00a0", key},
		{"00000000-00000000-00000000-00000000", "00000000-00000000-00000000-00000000"},
		{"FFFFFFFF-FFFFFFFF-FFFFFFFF-FFFFFFFF", "FFFFFFFF-FFFFFFFF-FFFFFFFF-FFFFFFFF"},

		{"", ""},
		{"   ", ""},
		{"85DB262A-C19D4B06-A5335A6B-8C07916", ""},          // short
		{"85DB262A-C19D4B06-A5335A6B-8C0791666", ""},        // long
		{"85DB262AC19D4B06A5335A6B8C079166", ""},            // no dashes
		{"85DB262A-C19D4B06-A5335A6B8C079166-", ""},         // dash misplaced
		{"85DB262A_C19D4B06_A5335A6B_8C079166", ""},         // wrong separator
		{"85DB262G-C19D4B06-A5335A6B-8C079166", ""},         // G is not hex
		{"85DB262A-C19D4B06-A5335A6B-8C07916Z", ""},         // Z is not hex
		{"85DB262A C19D4B06 A5335A6B 8C079166", ""},         // spaces
		{"85DB262A\u2013C19D4B06-A5335A6B-8C079166", ""},    // en dash look-alike
		{"85DB262\u0410-C19D4B06-A5335A6B-8C079166", ""},    // Cyrillic A
		{"\uff18\uff15DB262A-C19D4B06-A5335A6B-8C0791", ""}, // full-width digits
		{"4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d", ""},        // a UUID
		{"CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123", ""},
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" for success
	}{
		{name: "minimal", cfg: Config{BaseURL: "https://api.digitaldownloadsapp.com"}},
		{name: "with products", cfg: Config{BaseURL: "http://127.0.0.1:8080/", Products: products}},
		{name: "empty token", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{Product: "p"}}}, wantErr: "ddp_list_token is empty"},
		{name: "token with a space", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{Product: "p", VendorID: "abc def"}}}, wantErr: "ddp_list_token"},
		{name: "token with a newline", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{Product: "p", VendorID: "abc\n"}}}, wantErr: "ddp_list_token"},
		{name: "empty product", cfg: Config{BaseURL: "https://a.example", Products: upstreams.ProductMap{{VendorID: tokA}}}, wantErr: "empty product"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				if s.client.HTTP == nil || s.client.MaxBody != upstreams.DefaultMaxBody || s.client.Now == nil {
					t.Errorf("defaults not set: %+v", s)
				}
				if s.client.HTTP.Timeout != 0 {
					t.Errorf("default client has a timeout of its own")
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

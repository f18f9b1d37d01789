package gumroad

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const (
	productID = "32-nPAicqbLj8B_WswVlMw=="
	otherID   = "bM4ZmOzJ2NQvDbRCmsNHSw=="

	keyGood    = "85DB262A-C19D4B06-A5335A6B-8C079166"
	keyUnknown = "00000000-00000000-00000000-00000000"
)

// answer is one canned Gumroad response.
type answer struct {
	status int
	body   string
	header map[string]string
}

// verified is the documented verify answer (gumroad.com/api#licenses and
// help.gumroad.com/article/76-license-keys) of a one-off product.
const verified = `{
  "success": true,
  "uses": 3,
  "purchase": {
    "seller_id": "kL0psVL2admJSYRNs-OCMg==",
    "product_id": "32-nPAicqbLj8B_WswVlMw==",
    "product_name": "licenses demo product",
    "permalink": "QMGY",
    "product_permalink": "https://sahil.gumroad.com/l/pencil",
    "short_product_id": "QMGY",
    "email": "customer@example.com",
    "price": 0,
    "gumroad_fee": 0,
    "currency": "usd",
    "quantity": 1,
    "discover_fee_charged": false,
    "can_contact": true,
    "referrer": "direct",
    "card": {"visual": null, "type": null, "bin": null, "expiry_month": null, "expiry_year": null},
    "order_number": 524459935,
    "sale_id": "FO8TXN-dvxYabdavG97Y-Q==",
    "sale_timestamp": "2021-01-05T19:38:56Z",
    "full_name": "Maxwell Elliott",
    "purchaser_id": "5550321502811",
    "variants": "",
    "license_key": "85DB262A-C19D4B06-A5335A6B-8C079166",
    "ip_country": "United States",
    "is_gift_receiver_purchase": false,
    "refunded": false,
    "disputed": false,
    "dispute_won": false,
    "id": "FO8TXN-dvxYabdavG97Y-Q==",
    "created_at": "2021-01-05T19:38:56Z",
    "custom_fields": [],
    "chargebacked": false
  }
}`

// membership is a verify answer for a membership product: the
// subscription_* times instead of the purchase's chargebacked.
const membership = `{
  "success": true,
  "uses": 0,
  "purchase": {
    "seller_id": "kL0psVL2admJSYRNs-OCMg==",
    "product_id": "32-nPAicqbLj8B_WswVlMw==",
    "product_name": "licenses demo membership",
    "email": "member@example.com",
    "quantity": 3,
    "order_number": 524459936,
    "sale_id": "aB8TXN-dvxYabdavG97Y-Q==",
    "sale_timestamp": "2025-01-05T19:38:56Z",
    "subscription_id": "GDzW4_aBdQc-o7Gbjng7lw==",
    "variants": "(Pro)",
    "license_key": "85DB262A-C19D4B06-A5335A6B-8C079166",
    "is_multiseat_license": true,
    "recurrence": "monthly",
    "is_gift_receiver_purchase": false,
    "refunded": false,
    "disputed": false,
    "dispute_won": false,
    "id": "aB8TXN-dvxYabdavG97Y-Q==",
    "created_at": "2025-01-05T19:38:56.000Z",
    "custom_fields": [],
    "subscription_ended_at": null,
    "subscription_cancelled_at": null,
    "subscription_failed_at": null
  }
}`

const (
	notFoundBody = `{"success":false,"message":"That license does not exist for the provided product."}`
	disabledBody = `{"success":false,"message":"This license key has been disabled."}`
	revokedBody  = `{"success":false,"message":"Access to the purchase associated with this license has expired."}`
	missingIDBdy = `{"success":false,"message":"The 'product_id' parameter is required to verify the license for this product. Please set 'product_id' to '32-nPAicqbLj8B_WswVlMw==' in the request."}`
)

// fake is a Gumroad API that asserts every request it gets. It answers
// by product id, then key; a key it does not know is the documented 404.
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	answers map[string]map[string]answer // product_id -> license_key -> answer
	hits    atomic.Int32

	mu       sync.Mutex
	products []string // product_id of each request, in order
	uses     int      // uses counted, as Gumroad does unless told not to
}

func newFake(t *testing.T, answers map[string]map[string]answer) *fake {
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
	if r.URL.Path != "/v2/licenses/verify" {
		t.Errorf("path %q, want /v2/licenses/verify", r.URL.Path)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query %q: the key must travel in the body", r.URL.RawQuery)
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q, want application/x-www-form-urlencoded", got)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q: verify takes no credentials", got)
	}
	if got := r.Header.Get("User-Agent"); got != upstreams.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, upstreams.UserAgent)
	}
	if err := r.ParseForm(); err != nil {
		t.Errorf("form: %v", err)
	}
	form := r.PostForm
	// Gumroad counts a use unless told not to: "false" is the only value
	// that keeps the counter still.
	if got := form["increment_uses_count"]; len(got) != 1 || got[0] != "false" {
		t.Errorf("increment_uses_count %q, want exactly \"false\" (the vendor's default is true)", got)
	}
	if got := form["product_id"]; len(got) != 1 || got[0] == "" {
		t.Errorf("product_id %q, want one (Gumroad answers 500 without it)", got)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(missingIDBdy))
		return
	}
	if len(form["license_key"]) != 1 {
		t.Errorf("license_key %q, want one", form["license_key"])
	}
	for k := range form {
		if k != "product_id" && k != "license_key" && k != "increment_uses_count" {
			t.Errorf("unexpected form field %q (product_permalink is deprecated)", k)
		}
	}
	f.mu.Lock()
	f.products = append(f.products, form.Get("product_id"))
	if inc := form.Get("increment_uses_count"); inc != "false" { // Gumroad's own test of the parameter
		f.uses++
	}
	f.mu.Unlock()
	a, ok := f.answers[form.Get("product_id")][form.Get("license_key")]
	if !ok {
		a = answer{status: http.StatusNotFound, body: notFoundBody}
	}
	upstreamtest.Write(w, a.status, a.header, a.body, "application/json")
}

func (f *fake) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.products...)
}

var products = upstreams.ProductMap{
	{Product: "pencil", VendorID: productID},
	{Product: "eraser", VendorID: otherID},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Products: products, Client: upstreams.Client{Now: func() time.Time { return now }}}, mod)
}

func set(body, field, value string) string {
	i := strings.Index(body, `"`+field+`":`)
	if i < 0 {
		panic("no field " + field)
	}
	j := i + len(field) + 3
	for j < len(body) && body[j] == ' ' {
		j++
	}
	k := j
	if body[k] == '"' {
		k = k + 1 + strings.IndexByte(body[k+1:], '"') + 1
	} else {
		for k < len(body) && body[k] != ',' && body[k] != '\n' && body[k] != '}' {
			k++
		}
	}
	return body[:j] + value + body[k:]
}

func TestVerify(t *testing.T) {
	oneOff := upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "Maxwell Elliott"}
	member := upstreams.Record{Product: "pencil", Type: "pro", LicensedTo: "member@example.com", ActivationsLimit: 3,
		// the sale and subscription a Ping names the purchase by
		Refs: []upstreams.VendorID{{Kind: upstreams.IDSale, ID: "aB8TXN-dvxYabdavG97Y-Q=="}, {Kind: upstreams.IDSubscription, ID: "GDzW4_aBdQc-o7Gbjng7lw=="}}}
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
		{name: "one-off purchase (documented answer)", answer: answer{status: 200, body: verified}, outcome: upstreams.Valid, record: oneOff},
		{name: "product named", answer: answer{status: 200, body: verified}, product: "pencil", outcome: upstreams.Valid, record: oneOff},
		{
			name:    "no full_name: the email",
			answer:  answer{status: 200, body: strings.Replace(verified, `"full_name": "Maxwell Elliott",`, "", 1)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "customer@example.com"},
		},
		{
			name:    "variant as the licence type",
			answer:  answer{status: 200, body: set(verified, "variants", `"(Extended License)"`)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "extended", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "variants as category to option: the option",
			answer:  answer{status: 200, body: set(verified, "variants", `{"Tier": "Pro"}`)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "pro", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "dispute won: valid",
			answer:  answer{status: 200, body: set(set(verified, "disputed", "true"), "dispute_won", "true")},
			outcome: upstreams.Valid,
			record:  oneOff,
		},
		{name: "refunded", answer: answer{status: 200, body: set(verified, "refunded", "true")}, outcome: upstreams.Invalid, reason: upstreams.Refunded},
		{name: "chargebacked", answer: answer{status: 200, body: set(set(verified, "chargebacked", "true"), "disputed", "true")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "disputed, not won (membership has no chargebacked)", answer: answer{status: 200, body: set(membership, "disputed", "true")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "refunded and chargebacked: refunded", answer: answer{status: 200, body: set(set(verified, "chargebacked", "true"), "refunded", "true")}, outcome: upstreams.Invalid, reason: upstreams.Refunded},
		{name: "membership alive", answer: answer{status: 200, body: membership}, outcome: upstreams.Valid, record: member},
		{
			name:    "membership, single seat",
			answer:  answer{status: 200, body: set(membership, "is_multiseat_license", "false")},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "pro", LicensedTo: "member@example.com"},
		},
		{
			name:    "membership cancelled, paid until later: alive until then",
			answer:  answer{status: 200, body: set(membership, "subscription_cancelled_at", `"2026-03-20T00:00:00Z"`)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "pro", LicensedTo: "member@example.com", ExpiresAt: upstreamtest.Time("2026-03-20T00:00:00Z"), ActivationsLimit: 3},
		},
		{
			name:    "membership cancelled in the past",
			answer:  answer{status: 200, body: set(membership, "subscription_cancelled_at", `"2026-02-01T00:00:00.000Z"`)},
			outcome: upstreams.Invalid,
			reason:  upstreams.Expired,
		},
		{name: "membership ended", answer: answer{status: 200, body: set(membership, "subscription_ended_at", `"2026-02-01T00:00:00Z"`)}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "membership failed (card declined past the retries)", answer: answer{status: 200, body: set(membership, "subscription_failed_at", `"2026-02-10T08:00:00Z"`)}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "membership refunded", answer: answer{status: 200, body: set(membership, "refunded", "true")}, outcome: upstreams.Invalid, reason: upstreams.Refunded},
		{
			name:    "imported customer (no purchase)",
			answer:  answer{status: 200, body: `{"success":true,"uses":0,"imported_customer":{"email":"imported@example.com","purchase_date":"2020-01-01"}}`},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "imported@example.com"},
		},
		{name: "404 no such licence for the product", answer: answer{status: 404, body: notFoundBody}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		// since antiwork/gumroad#7326 a full refund disables the key
		{name: "404 disabled key (a refund, or the seller)", answer: answer{status: 404, body: disabledBody}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "404 access revoked by the seller", answer: answer{status: 404, body: revokedBody}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "404 with another message", answer: answer{status: 404, body: `{"success":false,"message":"Something else."}`}, outcome: upstreams.Unknown},
		{
			name:    "404 page not from Gumroad (wrong base_url, proxy)",
			answer:  answer{status: 404, body: "<html>404</html>", header: map[string]string{"Content-Type": "text/html"}},
			outcome: upstreams.Unknown,
		},
		{name: "404 JSON of another shape", answer: answer{status: 404, body: `{"error":"not found"}`}, outcome: upstreams.Unknown},
		{name: "404 claiming success", answer: answer{status: 404, body: verified}, outcome: upstreams.Unknown},
		{name: "500 product_id required", answer: answer{status: 500, body: missingIDBdy}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 500)},
		{name: "400 parameter not a string", answer: answer{status: 400, body: `{"success":false,"message":"The 'license_key' parameter must be a string."}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 400)},
		{name: "401", answer: answer{status: 401, body: `{"success":false}`}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 401)},
		{name: "200 without success", answer: answer{status: 200, body: `{"success":false,"message":"?"}`}, outcome: upstreams.Unknown},
		{name: "success without purchase", answer: answer{status: 200, body: `{"success":true,"uses":1}`}, outcome: upstreams.Unknown},
		{name: "no success field", answer: answer{status: 200, body: `{"purchase":{"email":"x"}}`}, outcome: upstreams.Unknown},
		{name: "purchase of another product", answer: answer{status: 200, body: set(verified, "product_id", `"`+otherID+`"`)}, outcome: upstreams.Unknown},
		{name: "refunded not a boolean", answer: answer{status: 200, body: set(verified, "refunded", `"no"`)}, outcome: upstreams.Unknown},
		{name: "subscription time unreadable", answer: answer{status: 200, body: set(membership, "subscription_ended_at", `"last week"`)}, outcome: upstreams.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]map[string]answer{productID: {keyGood: tt.answer}})
			s := newSource(t, f.srv.URL, func(c *Config) { c.Products = products[:1] })
			v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: tt.product, Domain: "example.com", IP: "203.0.113.9"})
			if f.hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", f.hits.Load())
			}
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, keyGood, tt.cause, tt.retry)
		})
	}
}

// TestVerifyMappings: without a product in the request every mapping is
// tried in order until one is not "not found"; with one, only its id.
func TestVerifyMappings(t *testing.T) {
	ok := answer{status: 200, body: set(verified, "product_id", `"`+otherID+`"`)}
	tests := []struct {
		name    string
		answers map[string]map[string]answer
		product string
		asked   []string
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
	}{
		{
			name:    "found under the second product",
			answers: map[string]map[string]answer{otherID: {keyGood: ok}},
			asked:   []string{productID, otherID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "eraser", Type: "regular", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "found under the first: the second is not asked",
			answers: map[string]map[string]answer{productID: {keyGood: {status: 200, body: verified}}, otherID: {keyGood: ok}},
			asked:   []string{productID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "refunded under the first: definitive",
			answers: map[string]map[string]answer{productID: {keyGood: {status: 200, body: set(verified, "refunded", "true")}}},
			asked:   []string{productID},
			outcome: upstreams.Invalid,
			reason:  upstreams.Refunded,
		},
		{
			name:    "not found anywhere",
			asked:   []string{productID, otherID},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "product named: only its id is asked",
			answers: map[string]map[string]answer{otherID: {keyGood: ok}},
			product: "pencil",
			asked:   []string{productID},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
		{
			name:    "product named: the second id",
			answers: map[string]map[string]answer{otherID: {keyGood: ok}},
			product: "eraser",
			asked:   []string{otherID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "eraser", Type: "regular", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "an outage under one, not found under the other: unknown",
			answers: map[string]map[string]answer{productID: {keyGood: {status: 503}}},
			asked:   []string{productID, otherID},
			outcome: upstreams.Unknown,
		},
		{
			name:    "an outage under one, valid under the other: valid",
			answers: map[string]map[string]answer{productID: {keyGood: {status: 500, body: `{}`}}, otherID: {keyGood: ok}},
			asked:   []string{productID, otherID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "eraser", Type: "regular", LicensedTo: "Maxwell Elliott"},
		},
		{
			name:    "rate limited: the next product is not asked",
			answers: map[string]map[string]answer{productID: {keyGood: {status: 429, header: map[string]string{"Retry-After": "30"}}}},
			asked:   []string{productID},
			outcome: upstreams.Unknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.answers)
			s := newSource(t, f.srv.URL, nil)
			v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: tt.product})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			if got := f.asked(); strings.Join(got, " ") != strings.Join(tt.asked, " ") {
				t.Errorf("asked about %q, want %q", got, tt.asked)
			}
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

// TestVerifyCanonicalKey: a generated key is sent upper-case and trimmed
// even if the caller skipped CanonicalKey.
func TestVerifyCanonicalKey(t *testing.T) {
	f := newFake(t, map[string]map[string]answer{productID: {keyGood: {status: 200, body: verified}}})
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: " " + strings.ToLower(keyGood) + "\n"})
	upstreamtest.CheckVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "Maxwell Elliott"})
}

// TestVerifyNoMapping: a product without a gumroad_product is the
// author's configuration gap: Unknown, and nothing is asked.
func TestVerifyNoMapping(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "unmapped"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, errNoMapping) {
		t.Fatalf("verdict %+v, want Unknown for the missing mapping", v)
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests for an unmapped product", f.hits.Load())
	}
}

func TestVerifyBadKey(t *testing.T) {
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: "ab"})
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
	}, upstreams.Request{Key: keyGood, Product: "pencil"})
}

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.gumroad.com", nil)
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{keyGood, keyGood},
		{strings.ToLower(keyGood), keyGood},
		{"  " + keyGood + "\r\n", keyGood},
		{"\ufeff\u200b" + keyGood + "\u00a0", keyGood},
		// keys of other forms (imported customers) are kept as typed
		{"38b1460a-5104-4067-a91d-77b872934d51", "38b1460a-5104-4067-a91d-77b872934d51"},
		{"MyShop-Key_2020/abc", "MyShop-Key_2020/abc"},
		{"abcd", "abcd"},
		{strings.Repeat("K", 255), strings.Repeat("K", 255)},
		{"85db262a-c19d4b06-a5335a6b-8c07916", "85db262a-c19d4b06-a5335a6b-8c07916"}, // not the generated form: as typed

		{"", ""},
		{"abc", ""},
		{strings.Repeat("K", 256), ""},
		{strings.Repeat("K", 257), ""},
		{"85DB262A C19D4B06 A5335A6B 8C079166", ""},
		{strings.Replace(keyGood, "-", "\u2013", 1), ""}, // en dash from a PDF
		{strings.Replace(keyGood, "A", "\u0410", 1), ""}, // Cyrillic A
		{"85DB262A-C19D4B06\x00", ""},
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" when accepted
	}{
		{"ok", Config{BaseURL: "https://api.gumroad.com", Products: products}, ""},
		{"no products", Config{BaseURL: "https://api.gumroad.com"}, "gumroad_product is required"},
		{"negative max body", Config{BaseURL: "https://api.gumroad.com", Products: products, Client: upstreams.Client{MaxBody: -1}}, "max_body"},
		{"empty slug", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "", VendorID: productID}}}, "slug is empty"},
		{"empty product id", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: ""}}}, "gumroad_product"},
		{"product id with a space", Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: "32-nPAi cqb"}}}, "gumroad_product"},
		{
			"product id for two products",
			Config{BaseURL: "https://x", Products: upstreams.ProductMap{{Product: "a", VendorID: productID}, {Product: "b", VendorID: productID}}},
			"both a and b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				if s.Name() != "gumroad" {
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

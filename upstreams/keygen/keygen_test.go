package keygen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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
	account = "demo"
	token   = "prod-d8e3fa6c1b0e4f0f9d9b5e1a2c3d4e5fv3"

	productID = "4c6b1e7a-2f0e-4b5f-9e4b-1f3b7a4c9d21"
	otherID   = "9a0f3b2c-6d1e-4f7a-8b9c-0d1e2f3a4b5c"
	foreignID = "00000000-1111-4222-8333-444444444444"

	keyGood    = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3"
	keyUnknown = "ZZZZZZ-ZZZZZZ-ZZZZZZ-ZZZZZZ-ZZZZZZ-V3"
)

// answer is one canned Keygen response.
type answer struct {
	status int
	body   string
	header map[string]string
}

// licenceJSON is the license object Keygen includes with every answer
// about an existing key (keygen.sh/docs/api/licenses).
func licenceJSON(product, expiry string, maxMachines string) string {
	return `{
    "id": "b18e3f3a-330c-4d8d-ae2e-014db21fa827",
    "type": "licenses",
    "attributes": {
      "name": "Pro licence for Luke",
      "key": "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3",
      "expiry": ` + expiry + `,
      "status": "ACTIVE",
      "uses": 0,
      "suspended": false,
      "scheme": null,
      "encrypted": false,
      "strict": true,
      "floating": true,
      "protected": false,
      "maxMachines": ` + maxMachines + `,
      "maxProcesses": null,
      "maxCores": null,
      "maxUses": null,
      "requireHeartbeat": false,
      "requireCheckIn": false,
      "lastValidated": "2026-02-28T10:00:00.000Z",
      "lastCheckIn": null,
      "nextCheckIn": null,
      "metadata": {},
      "created": "2025-03-01T00:00:00.000Z",
      "updated": "2026-02-28T10:00:00.000Z"
    },
    "relationships": {
      "account": {"links": {"related": "/v1/accounts/demo"}, "data": {"type": "accounts", "id": "1fddcec8-8dd3-4d8d-9b16-215cac0f9b52"}},
      "product": {"links": {"related": "/v1/accounts/demo/licenses/b18e3f3a-330c-4d8d-ae2e-014db21fa827/product"}, "data": {"type": "products", "id": "` + product + `"}},
      "policy": {"links": {"related": "/v1/accounts/demo/licenses/b18e3f3a-330c-4d8d-ae2e-014db21fa827/policy"}, "data": {"type": "policies", "id": "8b2e1c4d-5f6a-4b7c-9d8e-0f1a2b3c4d5e"}},
      "owner": {"links": {"related": "/v1/accounts/demo/licenses/b18e3f3a-330c-4d8d-ae2e-014db21fa827/owner"}, "data": null},
      "machines": {"links": {"related": "/v1/accounts/demo/licenses/b18e3f3a-330c-4d8d-ae2e-014db21fa827/machines"}, "meta": {"cores": 0, "count": 0}}
    },
    "links": {"self": "/v1/accounts/demo/licenses/b18e3f3a-330c-4d8d-ae2e-014db21fa827"}
  }`
}

// validated builds a validate-key answer.
func validated(valid bool, code, detail, data string) string {
	v := "false"
	if valid {
		v = "true"
	}
	return `{"meta": {"ts": "2026-03-01T12:00:00.000Z", "valid": ` + v + `, "detail": "` + detail + `", "code": "` + code + `"},
  "data": ` + data + `}`
}

var (
	lic        = licenceJSON(productID, `"2027-01-01T00:00:00.000Z"`, "3")
	licExpired = licenceJSON(productID, `"2026-02-01T00:00:00.000Z"`, "3")
	licForever = licenceJSON(productID, "null", "null")
	licOther   = licenceJSON(otherID, `"2027-01-01T00:00:00.000Z"`, "1")
	licForeign = licenceJSON(foreignID, `"2027-01-01T00:00:00.000Z"`, "1")

	validBody    = validated(true, "VALID", "is valid", lic)
	notFoundBody = validated(false, "NOT_FOUND", "does not exist", "null")
)

// errorsBody is Keygen's JSON:API error document.
func errorsBody(title, detail, code string) string {
	return `{"errors": [{"title": "` + title + `", "detail": "` + detail + `", "code": "` + code + `"}]}`
}

// fake is a Keygen API that asserts every request it gets. validate-key
// answers by key, then by the product scope sent ("" for none); a key it
// does not know is the documented NOT_FOUND. A licence read (GET
// licenses/{id}) answers from licences, else Keygen's 404 NOT_FOUND; a
// policy read from policies, else the policy of every fixture licence.
type fake struct {
	t        *testing.T
	srv      *httptest.Server
	auth     string                       // expected Authorization, "" for none
	env      string                       // expected Keygen-Environment, "" for none
	answers  map[string]map[string]answer // key -> scope -> answer
	licences map[string]answer            // licence id or key -> answer
	policies map[string]answer            // policy id -> answer
	hits     atomic.Int32

	mu       sync.Mutex
	scopes   []string // product scope of each validate-key request, in order
	requests []string // "METHOD path" of each request, in order
}

func newFake(t *testing.T, auth string, answers map[string]map[string]answer) *fake {
	f := &fake{t: t, auth: auth, answers: answers}
	f.srv = upstreamtest.NewServer(t, f.serve)
	return f
}

// policyID is the policy of every fixture licence.
const policyID = "8b2e1c4d-5f6a-4b7c-9d8e-0f1a2b3c4d5e"

// policyJSON is Keygen's policy answer (keygen.sh/docs/api/policies).
func policyJSON(name, strategy string) string {
	return `{"data": {"id": "` + policyID + `", "type": "policies",
  "attributes": {"name": "` + name + `", "duration": 31536000, "strict": false, "floating": true,
    "expirationStrategy": "` + strategy + `", "expirationBasis": "FROM_CREATION", "maxMachines": 3},
  "relationships": {"product": {"data": {"type": "products", "id": "` + productID + `"}}}}}`
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	t := f.t
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if got := r.Header.Get("Keygen-Environment"); got != f.env {
		t.Errorf("Keygen-Environment %q, want %q", got, f.env)
	}
	accountPath := "/v1/accounts/" + account
	if r.Method == http.MethodGet {
		if got := r.Header.Get("Authorization"); got != f.auth {
			t.Errorf("Authorization %q, want %q", got, f.auth)
		}
		if got := r.Header.Get("Accept"); got != "application/vnd.api+json" {
			t.Errorf("Accept %q, want application/vnd.api+json", got)
		}
		var a answer
		var ok bool
		switch {
		case strings.HasPrefix(r.URL.Path, accountPath+"/licenses/"):
			if a, ok = f.licences[strings.TrimPrefix(r.URL.Path, accountPath+"/licenses/")]; !ok {
				a = answer{status: 404, body: errorsBody("Not found", "The requested license was not found", "NOT_FOUND")}
			}
		case strings.HasPrefix(r.URL.Path, accountPath+"/policies/"):
			if a, ok = f.policies[strings.TrimPrefix(r.URL.Path, accountPath+"/policies/")]; !ok {
				a = answer{status: 200, body: policyJSON("Pro License", "RESTRICT_ACCESS")}
			}
		default:
			t.Errorf("GET %s", r.URL.Path)
			a = answer{status: 404, body: errorsBody("Not found", "", "NOT_FOUND")}
		}
		upstreamtest.Write(w, a.status, a.header, a.body, "application/vnd.api+json; charset=utf-8")
		return
	}
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if want := accountPath + "/licenses/actions/validate-key"; r.URL.Path != want {
		t.Errorf("path %q, want %s", r.URL.Path, want)
	}
	if r.URL.RawQuery != "" {
		t.Errorf("query %q: the key must travel in the body", r.URL.RawQuery)
	}
	if got := r.Header.Get("Content-Type"); got != "application/vnd.api+json" {
		t.Errorf("Content-Type %q, want application/vnd.api+json", got)
	}
	if got := r.Header.Get("Accept"); got != "application/vnd.api+json" {
		t.Errorf("Accept %q, want application/vnd.api+json", got)
	}
	if got := r.Header.Get("Authorization"); got != f.auth {
		t.Errorf("Authorization %q, want %q", got, f.auth)
	}
	if got := r.Header.Get("User-Agent"); got != upstreams.UserAgent {
		t.Errorf("User-Agent %q, want %q", got, upstreams.UserAgent)
	}
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		Meta struct {
			Key   string `json:"key"`
			Scope *struct {
				Product string `json:"product"`
			} `json:"scope"`
		} `json:"meta"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // Keygen's typed params are strict
	if err := dec.Decode(&body); err != nil {
		t.Errorf("body %s: %v", raw, err)
	}
	if body.Meta.Key == "" {
		t.Errorf("body %s has no meta.key", raw)
	}
	scope := ""
	if body.Meta.Scope != nil {
		scope = body.Meta.Scope.Product
		if scope == "" {
			t.Errorf("body %s has an empty product scope", raw)
		}
	}
	f.mu.Lock()
	f.scopes = append(f.scopes, scope)
	f.mu.Unlock()
	a, ok := f.answers[body.Meta.Key][scope]
	if !ok {
		a = answer{status: http.StatusOK, body: notFoundBody}
	}
	upstreamtest.Write(w, a.status, a.header, a.body, "application/vnd.api+json; charset=utf-8")
}

func (f *fake) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.scopes...)
}

func (f *fake) sentRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// licID is the id of every fixture licence.
const licID = "b18e3f3a-330c-4d8d-ae2e-014db21fa827"

var products = upstreams.ProductMap{
	{Product: "pro", VendorID: productID},
	{Product: "lite", VendorID: otherID},
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newSource(t *testing.T, base string, mod func(*Config)) *Source {
	t.Helper()
	return upstreamtest.Build(t, New, Config{BaseURL: base, Account: account, Products: products, Client: upstreams.Client{Now: func() time.Time { return now }}}, mod)
}

// TestVerify asks with the product named, so the scope is sent.
func TestVerify(t *testing.T) {
	good := upstreams.Record{Product: "pro", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 3}
	tests := []struct {
		name    string
		answer  answer
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
		cause   func(error) bool // for Unknown
		retry   time.Duration
	}{
		{name: "valid", answer: answer{status: 200, body: validBody}, outcome: upstreams.Valid, record: good},
		{
			name:    "valid, no expiry, no machine limit",
			answer:  answer{status: 200, body: validated(true, "VALID", "is valid", licForever)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pro", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke"},
		},
		{
			name:    "expired but kept valid by the policy (ALLOW_ACCESS): expiry as support",
			answer:  answer{status: 200, body: validated(true, "EXPIRED", "is expired", licExpired)},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "pro", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", SupportUntil: upstreamtest.Time("2026-02-01T00:00:00Z"), ActivationsLimit: 3},
		},
		{
			name:    "valid with an allowed machine overage",
			answer:  answer{status: 200, body: validated(true, "TOO_MANY_MACHINES", "has too many associated machines", lic)},
			outcome: upstreams.Valid,
			record:  good,
		},
		{
			name:    "valid with a finding, past its expiry: unknown",
			answer:  answer{status: 200, body: validated(true, "TOO_MANY_USERS", "has too many associated users", licExpired)},
			outcome: upstreams.Unknown,
		},
		{name: "NOT_FOUND", answer: answer{status: 200, body: notFoundBody}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "SUSPENDED", answer: answer{status: 200, body: validated(false, "SUSPENDED", "is suspended", lic)}, outcome: upstreams.Invalid, reason: upstreams.Suspended},
		{name: "BANNED (the licence's user)", answer: answer{status: 200, body: validated(false, "BANNED", "is banned", lic)}, outcome: upstreams.Invalid, reason: upstreams.Suspended},
		{name: "EXPIRED", answer: answer{status: 200, body: validated(false, "EXPIRED", "is expired", licExpired)}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{
			name:    "PRODUCT_SCOPE_MISMATCH",
			answer:  answer{status: 200, body: validated(false, "PRODUCT_SCOPE_MISMATCH", "product scope does not match", licForeign)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "PRODUCT_SCOPE_MISMATCH without the licence's relationships",
			answer:  answer{status: 200, body: `{"meta":{"valid":false,"detail":"product scope does not match","code":"PRODUCT_SCOPE_MISMATCH"},"data":{"id":"x","type":"licenses","attributes":{}}}`},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "PRODUCT_SCOPE_MISMATCH for a licence of the scoped product: contradictory",
			answer:  answer{status: 200, body: validated(false, "PRODUCT_SCOPE_MISMATCH", "product scope does not match", lic)},
			outcome: upstreams.Unknown,
		},
		{
			name:    "suspended licence of another product",
			answer:  answer{status: 200, body: validated(false, "SUSPENDED", "is suspended", licForeign)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "another of our products, not the one asked for",
			answer:  answer{status: 200, body: validated(false, "SUSPENDED", "is suspended", licOther)},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "NO_MACHINE: exists, no Keygen machine (the gateway counts its own)",
			answer:  answer{status: 200, body: validated(false, "NO_MACHINE", "must have exactly 1 associated machine", lic)},
			outcome: upstreams.Valid,
			record:  good,
		},
		{name: "NO_MACHINES", answer: answer{status: 200, body: validated(false, "NO_MACHINES", "must have at least 1 associated machine", lic)}, outcome: upstreams.Valid, record: good},
		{name: "TOO_MANY_MACHINES", answer: answer{status: 200, body: validated(false, "TOO_MANY_MACHINES", "has too many associated machines", lic)}, outcome: upstreams.Valid, record: good},
		{name: "FINGERPRINT_SCOPE_REQUIRED", answer: answer{status: 200, body: validated(false, "FINGERPRINT_SCOPE_REQUIRED", "fingerprint scope is required", lic)}, outcome: upstreams.Valid, record: good},
		{name: "FINGERPRINT_SCOPE_MISMATCH", answer: answer{status: 200, body: validated(false, "FINGERPRINT_SCOPE_MISMATCH", "fingerprint is not activated", lic)}, outcome: upstreams.Valid, record: good},
		{
			name:    "NO_MACHINE past the expiry: the expiration strategy decides, unknown",
			answer:  answer{status: 200, body: validated(false, "NO_MACHINE", "must have exactly 1 associated machine", licExpired)},
			outcome: upstreams.Unknown,
		},
		{name: "OVERDUE check-in", answer: answer{status: 200, body: validated(false, "OVERDUE", "is overdue for check in", lic)}, outcome: upstreams.Unknown},
		{name: "USER_SCOPE_REQUIRED", answer: answer{status: 200, body: validated(false, "USER_SCOPE_REQUIRED", "user scope is required", lic)}, outcome: upstreams.Unknown},
		{name: "HEARTBEAT_DEAD", answer: answer{status: 200, body: validated(false, "HEARTBEAT_DEAD", "machine heartbeat is dead", lic)}, outcome: upstreams.Unknown},
		{name: "a code from the future", answer: answer{status: 200, body: validated(false, "QUANTUM_DECOHERENCE", "?", lic)}, outcome: upstreams.Unknown},
		{name: "PRODUCT_SCOPE_REQUIRED with the scope sent", answer: answer{status: 200, body: validated(false, "PRODUCT_SCOPE_REQUIRED", "product scope is required", lic)}, outcome: upstreams.Unknown},
		{name: "NOT_FOUND claiming valid", answer: answer{status: 200, body: validated(true, "NOT_FOUND", "does not exist", "null")}, outcome: upstreams.Unknown},
		{name: "VALID without data", answer: answer{status: 200, body: validated(true, "VALID", "is valid", "null")}, outcome: upstreams.Unknown},
		{name: "no meta", answer: answer{status: 200, body: `{"data": ` + lic + `}`}, outcome: upstreams.Unknown},
		{name: "meta without code", answer: answer{status: 200, body: `{"meta": {"valid": true, "detail": "is valid"}, "data": ` + lic + `}`}, outcome: upstreams.Unknown},
		{name: "meta without valid", answer: answer{status: 200, body: `{"meta": {"code": "VALID"}, "data": ` + lic + `}`}, outcome: upstreams.Unknown},
		{name: "expiry unreadable", answer: answer{status: 200, body: validated(true, "VALID", "is valid", licenceJSON(productID, `"soon"`, "1"))}, outcome: upstreams.Unknown},
		{name: "negative maxMachines", answer: answer{status: 200, body: validated(true, "VALID", "is valid", licenceJSON(productID, "null", "-1"))}, outcome: upstreams.Unknown},
		{
			name:    "401 token invalid",
			answer:  answer{status: 401, body: errorsBody("Unauthorized", "Token format is invalid", "TOKEN_FORMAT_INVALID")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(Name, 401),
		},
		{
			name:    "403 access denied",
			answer:  answer{status: 403, body: errorsBody("Access denied", "You do not have permission to complete the request", "ACCESS_DENIED")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(Name, 403),
		},
		{
			name:    "404 no such account (not the key)",
			answer:  answer{status: 404, body: errorsBody("Not found", "The requested account 'demo' was not found", "ACCOUNT_NOT_FOUND")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsStatusError(Name, 404),
		},
		{
			name:    "403 inactive subscription or IP block: the author's, as unknown",
			answer:  answer{status: 403, body: errorsBody("Forbidden", "Your account's subscription is not active", "")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsAuthorError(Name, 403),
		},
		{
			name:    "402 the free tier's daily limit: a pause, the token is fine",
			answer:  answer{status: 402, body: errorsBody("Payment required", "Your account has exceeded its daily request limit", "")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsRateLimit(Name, time.Hour),
			retry:   time.Hour,
		},
		{
			name:    "402 with a Retry-After",
			answer:  answer{status: 402, header: map[string]string{"Retry-After": "600"}, body: errorsBody("Payment required", "daily limit", "")},
			outcome: upstreams.Unknown,
			cause:   upstreamtest.IsRateLimit(Name, 10*time.Minute),
			retry:   10 * time.Minute,
		},
		{name: "TOO_MUCH_MEMORY: machines' memory at Keygen", answer: answer{status: 200, body: validated(false, "TOO_MUCH_MEMORY", "has too much associated machine memory", lic)}, outcome: upstreams.Valid, record: good},
		{name: "TOO_MUCH_DISK: machines' disk at Keygen", answer: answer{status: 200, body: validated(false, "TOO_MUCH_DISK", "has too much associated machine disk", lic)}, outcome: upstreams.Valid, record: good},
		{name: "TOO_MANY_USERS: Keygen users over maxUsers", answer: answer{status: 200, body: validated(false, "TOO_MANY_USERS", "has too many associated users", lic)}, outcome: upstreams.Valid, record: good},
		{name: "TOO_MANY_USERS past the expiry", answer: answer{status: 200, body: validated(false, "TOO_MANY_USERS", "has too many associated users", licExpired)}, outcome: upstreams.Unknown},
		{name: "400 bad request", answer: answer{status: 400, body: errorsBody("Bad request", "is missing", "PARAMETER_MISSING")}, outcome: upstreams.Unknown, cause: upstreamtest.IsStatusError(Name, 400)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, "", map[string]map[string]answer{keyGood: {productID: tt.answer}})
			s := newSource(t, f.srv.URL, nil)
			v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "pro", Domain: "example.com", IP: "203.0.113.9"})
			if f.hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", f.hits.Load())
			}
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, keyGood, tt.cause, tt.retry)
		})
	}
}

// TestVerifyScope: the product scope is sent when the request's product
// has one Keygen product; otherwise the licence's own product decides, and
// a policy requiring the scope gets a second call with it.
func TestVerifyScope(t *testing.T) {
	validOther := validated(true, "VALID", "is valid", licOther)
	scopeRequired := answer{status: 200, body: validated(false, "PRODUCT_SCOPE_REQUIRED", "product scope is required", licOther)}
	tests := []struct {
		name     string
		products upstreams.ProductMap
		answers  map[string]answer // scope -> answer
		product  string
		sent     []string
		outcome  upstreams.Outcome
		reason   upstreams.Reason
		record   upstreams.Record
	}{
		{
			name:    "no product asked, several mapped: no scope, the licence's product",
			answers: map[string]answer{"": {status: 200, body: validOther}},
			sent:    []string{""},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "lite", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 1},
		},
		{
			name:    "no product asked, licence of an unmapped product",
			answers: map[string]answer{"": {status: 200, body: validated(true, "VALID", "is valid", licForeign)}},
			sent:    []string{""},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "no product asked, the policy requires the scope: asked again with it",
			answers: map[string]answer{"": scopeRequired, otherID: {status: 200, body: validOther}},
			sent:    []string{"", otherID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "lite", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 1},
		},
		{
			name:    "the scope required for an unmapped product: not asked again",
			answers: map[string]answer{"": {status: 200, body: validated(false, "PRODUCT_SCOPE_REQUIRED", "product scope is required", licForeign)}},
			sent:    []string{""},
			outcome: upstreams.Invalid,
			reason:  upstreams.WrongProduct,
		},
		{
			name:    "the scope required again: unknown, no third call",
			answers: map[string]answer{"": scopeRequired, otherID: scopeRequired},
			sent:    []string{"", otherID},
			outcome: upstreams.Unknown,
		},
		{
			name:     "no product asked, one mapped: its scope",
			products: products[:1],
			answers:  map[string]answer{productID: {status: 200, body: validBody}},
			sent:     []string{productID},
			outcome:  upstreams.Valid,
			record:   upstreams.Record{Product: "pro", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 3},
		},
		{
			name:    "product asked: its scope",
			product: "lite",
			answers: map[string]answer{otherID: {status: 200, body: validOther}},
			sent:    []string{otherID},
			outcome: upstreams.Valid,
			record:  upstreams.Record{Product: "lite", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 1},
		},
		{
			name:     "product asked with two Keygen products: no scope, the licence's product",
			products: upstreams.ProductMap{{Product: "pro", VendorID: productID}, {Product: "pro", VendorID: otherID}},
			product:  "pro",
			answers:  map[string]answer{"": {status: 200, body: validOther}},
			sent:     []string{""},
			outcome:  upstreams.Valid,
			record:   upstreams.Record{Product: "pro", Type: "regular", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 1},
		},
		{
			name:    "no product asked, not found",
			sent:    []string{""},
			outcome: upstreams.Invalid,
			reason:  upstreams.NotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, "", map[string]map[string]answer{keyGood: tt.answers})
			s := newSource(t, f.srv.URL, func(c *Config) {
				if tt.products != nil {
					c.Products = tt.products
				}
			})
			v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: tt.product})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			if got := f.sent(); strings.Join(got, ",") != strings.Join(tt.sent, ",") {
				t.Errorf("scopes sent %q, want %q", got, tt.sent)
			}
		})
	}
}

// TestVerifyToken: a configured token is sent as a Bearer token, and the
// licence's type is its policy's name, read once.
func TestVerifyToken(t *testing.T) {
	f := newFake(t, "Bearer "+token, map[string]map[string]answer{keyGood: {productID: {status: 200, body: validBody}}})
	s := newSource(t, f.srv.URL, func(c *Config) { c.Token = " " + token + " " })
	for range 2 {
		v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "pro"})
		upstreamtest.CheckVerdict(t, v, upstreams.Valid, "", upstreams.Record{Product: "pro", Type: "pro", VendorID: licID,
			Refs:       []upstreams.VendorID{{Kind: upstreams.IDLicence, ID: licID}},
			LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 3})
	}
	want := []string{
		"POST /v1/accounts/demo/licenses/actions/validate-key",
		"GET /v1/accounts/demo/policies/" + policyID,
		"POST /v1/accounts/demo/licenses/actions/validate-key", // the policy is cached
	}
	if got := f.sentRequests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests %q, want %q", got, want)
	}
}

// TestVerifyPolicyUnreadable: a policy that cannot be read now leaves the
// type unknown, and so the verdict.
func TestVerifyPolicyUnreadable(t *testing.T) {
	f := newFake(t, "Bearer "+token, map[string]map[string]answer{keyGood: {productID: {status: 200, body: validBody}}})
	f.policies = map[string]answer{policyID: {status: 503, body: "down"}}
	s := newSource(t, f.srv.URL, func(c *Config) { c.Token = token })
	v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "pro"})
	upstreamtest.CheckVerdict(t, v, upstreams.Unknown, "", upstreams.Record{})
	upstreamtest.CheckCause(t, v, keyGood, upstreamtest.IsStatusError(Name, 503), 0)
}

// TestEnvironment: the environment goes as the Keygen-Environment header
// on every request.
func TestEnvironment(t *testing.T) {
	f := newFake(t, "Bearer "+token, map[string]map[string]answer{keyGood: {productID: {status: 200, body: validBody}}})
	f.env = "staging"
	f.licences = map[string]answer{licID: {status: 200, body: `{"data": ` + lic + `}`}}
	s := newSource(t, f.srv.URL, func(c *Config) { c.Token = token; c.Environment = " staging " })
	if v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "pro"}); v.Outcome != upstreams.Valid {
		t.Fatalf("verify: %+v", v)
	}
	if v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyGood, Product: "pro", VendorID: licID}); v.Outcome != upstreams.Valid {
		t.Fatalf("recheck: %+v", v)
	}
	if n := f.hits.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// TestVerifyUnknownKey: the fake's default answer is the documented
// NOT_FOUND validation, on HTTP 200.
func TestVerifyUnknownKey(t *testing.T) {
	f := newFake(t, "", nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: keyUnknown})
	upstreamtest.CheckVerdict(t, v, upstreams.Invalid, upstreams.NotFound, upstreams.Record{})
}

// TestVerifyKeyAsTyped: the key is trimmed but its case kept (Keygen keys
// are case-sensitive).
func TestVerifyKeyAsTyped(t *testing.T) {
	f := newFake(t, "", map[string]map[string]answer{keyGood: {productID: {status: 200, body: validBody}}})
	s := newSource(t, f.srv.URL, nil)
	if v := s.Verify(context.Background(), upstreams.Request{Key: "\t" + keyGood + " \n", Product: "pro"}); v.Outcome != upstreams.Valid {
		t.Errorf("trimmed key: verdict %+v, want Valid", v)
	}
	if v := s.Verify(context.Background(), upstreams.Request{Key: strings.ToLower(keyGood), Product: "pro"}); v.Outcome != upstreams.Invalid || v.Reason != upstreams.NotFound {
		t.Errorf("lower-cased key: verdict %+v, want NotFound (sent as typed)", v)
	}
}

// TestVerifyNoMapping: a product without a keygen_product is the author's
// configuration gap: Unknown, and nothing is asked.
func TestVerifyNoMapping(t *testing.T) {
	f := newFake(t, "", nil)
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
	f := newFake(t, "", nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Verify(context.Background(), upstreams.Request{Key: "abc"})
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
	}, upstreams.Request{Key: keyGood, Product: "pro"})
}

// TestEndpoint: the account is part of the path, after any base path.
func TestEndpoint(t *testing.T) {
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_, _ = w.Write([]byte(validBody))
	}))
	defer srv.Close()
	s := newSource(t, srv.URL+"/keygen/", func(c *Config) { c.Account = "1fddcec8-8dd3-4d8d-9b16-215cac0f9b52" })
	if v := s.Verify(context.Background(), upstreams.Request{Key: keyGood, Product: "pro"}); v.Outcome != upstreams.Valid {
		t.Fatalf("verdict %+v, want Valid", v)
	}
	if want := "/keygen/v1/accounts/1fddcec8-8dd3-4d8d-9b16-215cac0f9b52/licenses/actions/validate-key"; path != want {
		t.Errorf("path %q, want %q", path, want)
	}
}

// Signed keys as Keygen issues them: key/ + a base64url payload + . + a
// base64url signature; ED25519's is some 500 characters, RSA's some 750.
var (
	signedED25519 = "key/" + strings.Repeat("eyJhY2NvdW50Ijp7ImlkIjoiMWZkZGNlYzgifSwicHJvZHVjdCI6e319", 7) + "." + strings.Repeat("c2lnbmF0dXJl", 7)
	signedRSA     = "key/" + strings.Repeat("eyJhY2NvdW50Ijp7ImlkIjoiMWZkZGNlYzgifSwicHJvZHVjdCI6e319", 7) + "." + strings.Repeat("c2lnbmF0dXJlc2lnbmF0dXJl", 14)
)

func TestCanonicalKey(t *testing.T) {
	s := newSource(t, "https://api.keygen.sh", nil)
	signed := "key/" + strings.Repeat("eyJhY2NvdW50Ijp7ImlkIjoi", 6) + ".c2lnbmF0dXJl"
	// {input, canonical key}; an empty one: refused
	upstreamtest.CheckCanonicalKey(t, s, [][2]string{
		{keyGood, keyGood},
		{strings.ToLower(keyGood), strings.ToLower(keyGood)}, // case kept: Keygen compares exactly
		{"  " + keyGood + "\r\n", keyGood},
		{"\ufeff\u200b" + keyGood + "\u00a0", keyGood},
		{"38b1460a-5104-4067-a91d-77b872934d51", "38b1460a-5104-4067-a91d-77b872934d51"},
		{"abcdef", "abcdef"},
		{signed, signed},
		{strings.Repeat("k", 256), strings.Repeat("k", 256)},
		{signedED25519, signedED25519},
		{signedRSA, signedRSA},
		{strings.Repeat("k", 16<<10), strings.Repeat("k", 16<<10)},

		{"", ""},
		{"abcde", ""},
		{strings.Repeat("k", 16<<10+1), ""},
		{"C1B6DE 39A6E3", ""},
		{strings.Replace(keyGood, "-", "\u2013", 1), ""}, // en dash from a PDF
		{strings.Replace(keyGood, "C", "\u0421", 1), ""}, // Cyrillic Es
		{keyGood + "\x00", ""},
	})
}

func TestNew(t *testing.T) {
	base := "https://api.keygen.sh"
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" when accepted
	}{
		{"ok", Config{BaseURL: base, Account: account, Products: products}, ""},
		{"with token", Config{BaseURL: base, Account: account, Token: token, Products: products}, ""},
		{"account by id", Config{BaseURL: base, Account: "1fddcec8-8dd3-4d8d-9b16-215cac0f9b52"}, ""},
		{"self-hosted over http", Config{BaseURL: "http://keygen.internal:3000", Account: account}, ""},
		{"no account", Config{BaseURL: base, Products: products}, "account is required"},
		{"blank account", Config{BaseURL: base, Account: "  "}, "account is required"},
		{"account with a slash", Config{BaseURL: base, Account: "demo/../other"}, "account"},
		{"account with a dot", Config{BaseURL: base, Account: ".."}, "account"},
		{"environment", Config{BaseURL: base, Account: account, Environment: "staging"}, ""},
		{"environment with a slash", Config{BaseURL: base, Account: account, Environment: "a/b"}, "environment"},
		{"environment with a newline", Config{BaseURL: base, Account: account, Environment: "a\nb"}, "environment"},
		{"base_url with user info", Config{BaseURL: "https://u:p@api.keygen.sh", Account: account}, "base_url"},
		{"token with a space", Config{BaseURL: base, Account: account, Token: "prod-abc def"}, "token"},
		{"token with a newline", Config{BaseURL: base, Account: account, Token: "prod-abc\ndef"}, "token"},
		{"negative max body", Config{BaseURL: base, Account: account, Client: upstreams.Client{MaxBody: -1}}, "max_body"},
		{"empty slug", Config{BaseURL: base, Account: account, Products: upstreams.ProductMap{{Product: "", VendorID: productID}}}, "slug is empty"},
		{"empty product id", Config{BaseURL: base, Account: account, Products: upstreams.ProductMap{{Product: "a", VendorID: ""}}}, "keygen_product"},
		{
			"product id for two products",
			Config{BaseURL: base, Account: account, Products: upstreams.ProductMap{{Product: "a", VendorID: productID}, {Product: "b", VendorID: productID}}},
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
				if s.Name() != "keygen" {
					t.Errorf("Name %q", s.Name())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error %v, want one containing %q", err, tt.want)
			}
			if tt.cfg.Token != "" && strings.Contains(err.Error(), tt.cfg.Token) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
}

func TestNewBaseURL(t *testing.T) {
	upstreamtest.RunBaseURLCases(t, func(baseURL string) error {
		_, err := New(Config{BaseURL: baseURL, Account: account, Products: products})
		return err
	})
}

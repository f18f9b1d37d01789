package keygen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

// withStatus is a licence object with another status and suspended flag.
func withStatus(l, status string, suspended bool) string {
	l = strings.Replace(l, `"status": "ACTIVE"`, `"status": "`+status+`"`, 1)
	if suspended {
		l = strings.Replace(l, `"suspended": false`, `"suspended": true`, 1)
	}
	return l
}

func read(l string) answer { return answer{status: 200, body: `{"data": ` + l + `}`} }

// TestRecheck: a recheck reads the licence with the token, one GET (and
// the policy when it needs it), never validate-key, and classifies the
// licence as validate-key would.
func TestRecheck(t *testing.T) {
	supportEnd := upstreamtest.Time("2026-02-01T00:00:00Z")
	renewed := upstreams.Record{Product: "pro", Type: "pro", VendorID: licID, LicensedTo: "Pro licence for Luke", ExpiresAt: upstreamtest.Time("2027-01-01T00:00:00Z"), ActivationsLimit: 3}
	readLic := "GET /v1/accounts/demo/licenses/" + licID
	readPolicy := "GET /v1/accounts/demo/policies/" + policyID
	tests := []struct {
		name     string
		licence  answer
		policy   string // the policy's expiration strategy; "" the fake's default
		outcome  upstreams.Outcome
		reason   upstreams.Reason
		record   upstreams.Record
		cause    func(error) bool
		retry    time.Duration
		requests []string
	}{
		{name: "active, renewed: the new expiry", licence: read(lic), outcome: upstreams.Valid, record: renewed, requests: []string{readLic, readPolicy}},
		{
			name:     "no expiry",
			licence:  read(licForever),
			outcome:  upstreams.Valid,
			record:   upstreams.Record{Product: "pro", Type: "pro", VendorID: licID, LicensedTo: "Pro licence for Luke"},
			requests: []string{readLic, readPolicy},
		},
		{name: "suspended", licence: read(withStatus(lic, "SUSPENDED", true)), outcome: upstreams.Invalid, reason: upstreams.Suspended, requests: []string{readLic}},
		{name: "banned (its user)", licence: read(withStatus(lic, "BANNED", false)), outcome: upstreams.Invalid, reason: upstreams.Suspended, requests: []string{readLic}},
		{name: "expired, RESTRICT_ACCESS", licence: read(withStatus(licExpired, "EXPIRED", false)), policy: "RESTRICT_ACCESS", outcome: upstreams.Invalid, reason: upstreams.Expired, requests: []string{readLic, readPolicy}},
		{name: "expired, REVOKE_ACCESS", licence: read(withStatus(licExpired, "EXPIRED", false)), policy: "REVOKE_ACCESS", outcome: upstreams.Invalid, reason: upstreams.Expired, requests: []string{readLic, readPolicy}},
		{
			name:     "expired, MAINTAIN_ACCESS: valid, the expiry ends support",
			licence:  read(withStatus(licExpired, "EXPIRED", false)),
			policy:   "MAINTAIN_ACCESS",
			outcome:  upstreams.Valid,
			record:   upstreams.Record{Product: "pro", Type: "pro", VendorID: licID, LicensedTo: "Pro licence for Luke", SupportUntil: supportEnd, ActivationsLimit: 3},
			requests: []string{readLic, readPolicy},
		},
		{name: "another author's product: about the request, kept as wrong_product", licence: read(licForeign), outcome: upstreams.Invalid, reason: upstreams.WrongProduct, requests: []string{readLic}},
		{name: "deleted: 404 NOT_FOUND", licence: answer{status: 404, body: errorsBody("Not found", "The requested license was not found", "NOT_FOUND")}, outcome: upstreams.Invalid, reason: upstreams.NotFound, requests: []string{readLic}},
		{name: "a proxy's 404", licence: answer{status: 404, body: "<html>not here</html>"}, outcome: upstreams.Unknown, requests: []string{readLic}},
		{name: "401", licence: answer{status: 401, body: errorsBody("Unauthorized", "Token is invalid", "TOKEN_INVALID")}, outcome: upstreams.Unknown, cause: upstreamtest.IsAuthorError(Name, 401), requests: []string{readLic}},
		{name: "403", licence: answer{status: 403, body: errorsBody("Forbidden", "subscription inactive", "")}, outcome: upstreams.Unknown, cause: upstreamtest.IsAuthorError(Name, 403), requests: []string{readLic}},
		{name: "402 daily limit", licence: answer{status: 402, body: errorsBody("Payment required", "daily limit", "")}, outcome: upstreams.Unknown, cause: upstreamtest.IsRateLimit(Name, time.Hour), retry: time.Hour, requests: []string{readLic}},
		{name: "another key's licence", licence: read(strings.Replace(lic, keyGood, keyUnknown, 1)), outcome: upstreams.Unknown, requests: []string{readLic}},
		{name: "no data", licence: answer{status: 200, body: `{"data": null}`}, outcome: upstreams.Unknown, requests: []string{readLic}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, "Bearer "+token, nil)
			f.licences = map[string]answer{licID: tt.licence}
			if tt.policy != "" {
				f.policies = map[string]answer{policyID: {status: 200, body: policyJSON("Pro", tt.policy)}}
			}
			s := newSource(t, f.srv.URL, func(c *Config) { c.Token = token })
			v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyGood, Product: "pro", Domain: "example.com", VendorID: licID})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			upstreamtest.CheckCause(t, v, keyGood, tt.cause, tt.retry)
			if got := f.sentRequests(); strings.Join(got, "\n") != strings.Join(tt.requests, "\n") {
				t.Errorf("requests %q, want %q", got, tt.requests)
			}
		})
	}
}

// TestRecheckWithoutID: a licence recorded before its id was is read by
// its key when the key is URL-safe; a signed key without an id, or a
// source without a token, cannot be rechecked and nothing is asked.
func TestRecheckWithoutID(t *testing.T) {
	f := newFake(t, "Bearer "+token, nil)
	f.licences = map[string]answer{keyGood: read(lic)}
	s := newSource(t, f.srv.URL, func(c *Config) { c.Token = token })
	if v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyGood, Product: "pro"}); v.Outcome != upstreams.Valid || v.Record.VendorID != licID {
		t.Fatalf("by key: %+v, want Valid with the licence id", v)
	}
	if got := f.sentRequests(); len(got) == 0 || got[0] != "GET /v1/accounts/demo/licenses/"+keyGood {
		t.Errorf("requests %q", got)
	}
	before := f.hits.Load()
	v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: signedED25519, Product: "pro"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, upstreams.ErrRecheckUnsupported) {
		t.Errorf("signed key without id: %+v, want Unknown ErrRecheckUnsupported", v)
	}
	noToken := newSource(t, f.srv.URL, nil)
	v = noToken.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyGood, Product: "pro", VendorID: licID})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, upstreams.ErrRecheckUnsupported) {
		t.Errorf("no token: %+v, want Unknown ErrRecheckUnsupported", v)
	}
	if f.hits.Load() != before {
		t.Errorf("%d requests for rechecks that cannot be made", f.hits.Load()-before)
	}
}

// TestSignedKey: a signed key of RSA's length reaches Keygen whole, past
// the gateway's first check and the source's.
func TestSignedKey(t *testing.T) {
	key, err := upstreams.CleanKey(" " + signedRSA + "\n")
	if err != nil {
		t.Fatalf("CleanKey refused a %d-character signed key: %v", len(signedRSA), err)
	}
	f := newFake(t, "", map[string]map[string]answer{signedRSA: {productID: {status: 200, body: validBody}}})
	s := newSource(t, f.srv.URL, nil)
	canon, err := s.CanonicalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Verify(context.Background(), upstreams.Request{Key: canon, Product: "pro"}); v.Outcome != upstreams.Valid {
		t.Fatalf("verdict %+v, want Valid", v)
	}
}

// TestRecheckOutages: the recheck read answers outages Unknown like Verify.
func TestRecheckOutages(t *testing.T) {
	upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
		return upstreamtest.RecheckAsVerify(newSource(t, o.BaseURL, func(c *Config) { c.Client = o.UpstreamClient(); c.Token = token }), licID)
	}, upstreams.Request{Key: keyGood, Product: "pro"})
}

// TestRecheckByKeyTracesNoKey: a licence read by its key (no id recorded)
// has its call traced with the key replaced in url.path; one read by its
// id keeps the path.
func TestRecheckByKeyTracesNoKey(t *testing.T) {
	f := newFake(t, "Bearer "+token, nil)
	f.licences = map[string]answer{keyGood: read(lic), licID: read(lic)}
	s := newSource(t, f.srv.URL, func(c *Config) { c.Token = token })
	paths := func(req upstreams.RecheckRequest) []string {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		ctx, parent := tp.Tracer("test").Start(context.Background(), "recheck")
		if v := s.Recheck(ctx, req); v.Outcome != upstreams.Valid {
			t.Fatalf("%+v, want Valid", v)
		}
		parent.End()
		var out []string
		for _, sp := range rec.Ended() {
			for _, a := range sp.Attributes() {
				if strings.Contains(a.Value.Emit(), keyGood) {
					t.Errorf("span %q records the key in %s", sp.Name(), a.Key)
				}
				if a.Key == "url.path" {
					out = append(out, a.Value.AsString())
				}
			}
		}
		return out
	}
	want := []string{"/v1/accounts/demo/licenses/[key]", "/v1/accounts/demo/policies/" + policyID} // the policy's call keeps its path
	if got := paths(upstreams.RecheckRequest{Key: keyGood, Product: "pro"}); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("by key: url.path %q, want %q", got, want)
	}
	if got := paths(upstreams.RecheckRequest{Key: keyGood, Product: "pro", VendorID: licID}); len(got) == 0 || got[0] != "/v1/accounts/demo/licenses/"+licID {
		t.Errorf("by id: url.path %q, want the licence's path first", got)
	}
}

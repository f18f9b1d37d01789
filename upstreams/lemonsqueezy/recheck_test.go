package lemonsqueezy

import (
	"context"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

var (
	testModeKey = strings.Replace(validActive, `"test_mode": false`, `"test_mode": true`, 1)
	// pastExpiry: Lemon Squeezy still says active after expires_at passed
	pastExpiry = strings.Replace(validActive, "2027-01-24T14:15:07.000000Z", "2026-02-01T00:00:00.000000Z", 1)
)

// TestTestModeAndExpiry: a test-mode key is refused as wrong_product
// unless the source allows test mode; a key past its expires_at is expired
// though its status still says active.
func TestTestModeAndExpiry(t *testing.T) {
	active := upstreams.Record{Product: "example", Type: "example-variant", LicensedTo: "Luke Skywalker",
		ExpiresAt: upstreamtest.Time("2027-01-24T14:15:07Z"), ActivationsLimit: 1}
	tests := []struct {
		name     string
		body     string
		allow    bool
		outcome  upstreams.Outcome
		reason   upstreams.Reason
		record   upstreams.Record
		recheckR upstreams.Reason
	}{
		{name: "test mode refused", body: testModeKey, outcome: upstreams.Invalid, reason: upstreams.WrongProduct},
		{name: "test mode allowed", body: testModeKey, allow: true, outcome: upstreams.Valid, record: active},
		{name: "past expires_at while active", body: pastExpiry, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "test mode refused, whatever its status", body: strings.Replace(refused("disabled", "license_key disabled."), `"test_mode": false`, `"test_mode": true`, 1), outcome: upstreams.Invalid, reason: upstreams.WrongProduct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]answer{keyActive: {status: 200, body: tt.body}})
			s := newSource(t, f.srv.URL, func(c *Config) { c.AllowTestMode = tt.allow })
			v := s.Verify(context.Background(), upstreams.Request{Key: keyActive, Product: "example"})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			v = s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyActive, Product: "example"})
			upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
		})
	}
}

// TestRecheck: a recheck is the validate call (the fake refuses any other
// path and any field but license_key: never activate, no instance), and it
// sees a renewal, a refund's disabled key and an expiry.
func TestRecheck(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		outcome upstreams.Outcome
		reason  upstreams.Reason
	}{
		{name: "renewed", answer: answer{status: 200, body: validActive}, outcome: upstreams.Valid},
		{name: "disabled (refunded)", answer: answer{status: 400, body: refused("disabled", "This license key is disabled.")}, outcome: upstreams.Invalid, reason: upstreams.Disabled},
		{name: "expired", answer: answer{status: 400, body: refused("expired", "This license key has expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "gone", answer: answer{status: 404, body: notFoundBody}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "another product: kept as wrong_product", answer: answer{status: 200, body: strings.Replace(validActive, `"product_id": 4`, `"product_id": 777`, 1)}, outcome: upstreams.Invalid, reason: upstreams.WrongProduct},
		{name: "rate limited", answer: answer{status: 429, body: "{}", header: map[string]string{"Retry-After": "30"}}, outcome: upstreams.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]answer{keyActive: tt.answer})
			s := newSource(t, f.srv.URL, nil)
			v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyActive, Product: "example", Domain: "example.com", IP: "203.0.113.9"})
			if v.Outcome != tt.outcome || v.Reason != tt.reason {
				t.Fatalf("verdict %+v, want %s %q", v, tt.outcome, tt.reason)
			}
			if f.hits.Load() != 1 {
				t.Errorf("%d requests, want 1", f.hits.Load())
			}
		})
	}
}

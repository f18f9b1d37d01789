package gumroad

import (
	"context"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

// TestRecheck: a recheck is the verify call with increment_uses_count
// false (the fake checks every request), so a month of rechecks leaves
// the uses counter where it was, and the vendor's answers classify as for
// an activation: a refund that disabled the key is revoked.
func TestRecheck(t *testing.T) {
	tests := []struct {
		name    string
		answer  answer
		outcome upstreams.Outcome
		reason  upstreams.Reason
		record  upstreams.Record
	}{
		{name: "valid", answer: answer{status: 200, body: verified}, outcome: upstreams.Valid, record: upstreams.Record{Product: "pencil", Type: "regular", LicensedTo: "Maxwell Elliott"}},
		{name: "refunded since: the key is disabled", answer: answer{status: 404, body: disabledBody}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "access revoked", answer: answer{status: 404, body: revokedBody}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "gone", answer: answer{status: 404, body: notFoundBody}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{name: "refunded flag", answer: answer{status: 200, body: set(verified, "refunded", "true")}, outcome: upstreams.Invalid, reason: upstreams.Refunded},
		{name: "500", answer: answer{status: 500, body: "oops"}, outcome: upstreams.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]map[string]answer{productID: {keyGood: tt.answer}})
			s := newSource(t, f.srv.URL, func(c *Config) { c.Products = products[:1] })
			for i := 0; i < 4*30; i++ { // every 6h for a month
				v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyGood, Product: "pencil", Domain: "example.com", IP: "203.0.113.9"})
				upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.uses != 0 || len(f.products) != 120 {
				t.Errorf("%d uses counted over %d requests, want 0 over 120", f.uses, len(f.products))
			}
		})
	}
}

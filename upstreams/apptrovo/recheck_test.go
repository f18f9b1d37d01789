package apptrovo

import (
	"context"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

// TestRecheck: a recheck sends the recorded domain, or none when none was
// recorded, never the domain of a new request: a domain AppTrovo has not
// seen for the key would take an activation slot. The fake asserts the
// domain of every request.
func TestRecheck(t *testing.T) {
	tests := []struct {
		name     string
		recorded string
		reply    reply
		outcome  upstreams.Outcome
		reason   upstreams.Reason
		record   upstreams.Record
	}{
		{name: "recorded domain, valid", recorded: "acme.com", reply: reply{status: 200, body: validStandard}, outcome: upstreams.Valid, record: standardRecord},
		{name: "no recorded domain: none sent", reply: reply{status: 200, body: validStandard}, outcome: upstreams.Valid, record: standardRecord},
		{name: "deactivated", recorded: "acme.com", reply: reply{status: 200, body: failureBody("License has been deactivated.")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "expired", recorded: "acme.com", reply: reply{status: 200, body: failureBody("License has expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{
			name: "another domain holds it: kept as domain_not_allowed", recorded: "acme.com",
			reply: reply{status: 200, body: failureBody("License is registered to a different domain.")}, outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, want{slug: "your-product-slug", domain: tt.recorded}, map[string]reply{keyStandard + "|your-product-slug": tt.reply})
			s := newSource(t, f.srv.URL, nil)
			for i := 0; i < 3; i++ {
				v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: keyStandard, Product: "converter-pro", Domain: tt.recorded, IP: "203.0.113.9"})
				upstreamtest.CheckVerdict(t, v, tt.outcome, tt.reason, tt.record)
			}
			if f.hits.Load() != 3 {
				t.Errorf("%d requests, want 3", f.hits.Load())
			}
		})
	}
}

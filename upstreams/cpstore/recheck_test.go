package cpstore

import (
	"context"
	"errors"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
)

// TestRecheck: a recheck sends the recorded domain and IP, which hold
// their slot already, and nothing else; without a recorded domain nothing
// is asked. The store's answers classify as for an activation.
func TestRecheck(t *testing.T) {
	tests := []struct {
		name    string
		rep     reply
		outcome upstreams.Outcome
		reason  upstreams.Reason
	}{
		{name: "valid", rep: reply{status: 200, body: `{"valid": true, "product": "Acme Theme Pro", "expiry": null, "lifetime": true}`}, outcome: upstreams.Valid},
		{name: "revoked", rep: reply{status: 403, body: refusalBody("License has been revoked.")}, outcome: upstreams.Invalid, reason: upstreams.Revoked},
		{name: "expired", rep: reply{status: 403, body: refusalBody("License expired.")}, outcome: upstreams.Invalid, reason: upstreams.Expired},
		{name: "gone", rep: reply{status: 404, body: refusalBody("License not found.")}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
		{
			name:    "slots taken: about the request, kept as domain_not_allowed",
			rep:     reply{status: 403, body: refusalBody("Max activations exceeded or unrecognized environment.")},
			outcome: upstreams.Invalid, reason: upstreams.DomainNotAllowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.rep)
			s := newSource(t, f.srv.URL)
			for i := 0; i < 3; i++ {
				v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: key, Product: "acme-theme", Domain: "shop.example.com", IP: "203.0.113.9"})
				if v.Outcome != tt.outcome || v.Reason != tt.reason {
					t.Fatalf("verdict %+v, want %s %q", v, tt.outcome, tt.reason)
				}
			}
			calls := f.Calls()
			if len(calls) != 3 {
				t.Fatalf("%d calls, want 3", len(calls))
			}
			for _, c := range calls {
				if c["domain"] != "shop.example.com" || c["ip"] != "203.0.113.9" || c["license_key"] != key {
					t.Errorf("sent %v, want the recorded domain and IP", c)
				}
			}
		})
	}
}

func TestRecheckWithoutRecordedDomain(t *testing.T) {
	f := newFake(t, reply{status: 200, body: `{"valid": true, "product": "Acme Theme Pro", "lifetime": true}`})
	s := newSource(t, f.srv.URL)
	v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: key, Product: "acme-theme"})
	if v.Outcome != upstreams.Unknown || !errors.Is(v.Cause, ErrNoDomain) {
		t.Fatalf("verdict %+v, want Unknown ErrNoDomain", v)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls without a recorded domain: a placeholder would take a slot", n)
	}
}

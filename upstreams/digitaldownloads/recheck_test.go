package digitaldownloads

import (
	"context"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
)

// TestRecheck: a recheck is the verify call with increment_uses_count
// false (the fake refuses any other value and any other field), so a month
// of rechecks every 6h spends none of the buyer's uses.
func TestRecheck(t *testing.T) {
	ok := func(b string) reply { return reply{status: 200, body: b} }
	tests := []struct {
		name    string
		rep     reply
		outcome upstreams.Outcome
		reason  upstreams.Reason
	}{
		{name: "valid", rep: ok(body(tokA, true, "", "2021-01-05T20:09:27Z", "delivered")), outcome: upstreams.Valid},
		{name: "disabled", rep: ok(body(tokA, false, "2026-02-01T00:00:00Z", "2021-01-05T20:09:27Z", "delivered")), outcome: upstreams.Invalid, reason: upstreams.Disabled},
		{name: "refunded", rep: ok(body(tokA, false, "", "2021-01-05T20:09:27Z", "refunded")), outcome: upstreams.Invalid, reason: upstreams.Refunded},
		{name: "gone", rep: reply{status: 404, body: `{"error":"Not found"}`}, outcome: upstreams.Invalid, reason: upstreams.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]reply{tokA: tt.rep})
			s := newSource(t, f.srv.URL, products)
			for i := 0; i < 4*30; i++ {
				v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: key, Product: "converter-pro", Domain: "example.com", IP: "203.0.113.9"})
				if v.Outcome != tt.outcome || v.Reason != tt.reason {
					t.Fatalf("recheck %d: verdict %+v, want %s %q", i, v, tt.outcome, tt.reason)
				}
			}
			if n := len(f.Calls()); n != 4*30 {
				t.Errorf("%d calls, want %d", n, 4*30)
			}
		})
	}
}

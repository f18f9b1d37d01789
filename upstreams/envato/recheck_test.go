package envato

import (
	"context"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
)

// TestRecheck: a recheck is the same sale look-up (a GET the fake checks),
// and a 404 stays not_found (the policy never auto-suspends it by default).
func TestRecheck(t *testing.T) {
	ok := newFake(t, map[string]answer{codeExtended: {status: 200, body: extendedGuestSale}})
	if v := newSource(t, ok.srv.URL, nil).Recheck(context.Background(), upstreams.RecheckRequest{Key: codeExtended, Product: "seo-studio"}); v.Outcome != upstreams.Valid || v.Record.Type != "extended" {
		t.Fatalf("valid sale: %+v", v)
	}
	f := newFake(t, nil)
	s := newSource(t, f.srv.URL, nil)
	v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: codeUnknown, Product: "seo-studio", Domain: "example.com"})
	if v.Outcome != upstreams.Invalid || v.Reason != upstreams.NotFound {
		t.Fatalf("verdict %+v, want not_found", v)
	}
	if f.hits.Load() != 1 {
		t.Errorf("%d requests, want 1", f.hits.Load())
	}
}

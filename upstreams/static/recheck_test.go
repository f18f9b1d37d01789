package static

import (
	"context"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// TestRecheck: a recheck looks at the file at once, without Verify's
// once-a-second pause, so an edit made just now decides it.
func TestRecheck(t *testing.T) {
	s, path, _ := newSource(t, "key,product\nK1,converter-pro\n")
	if v := verify(s, "K1"); v.Outcome != upstreams.Valid {
		t.Fatalf("K1 = %v", v.Outcome)
	}
	writeFile(t, path, "key,product,status\nK1,converter-pro,revoked\n", time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC))
	v := s.Recheck(context.Background(), upstreams.RecheckRequest{Key: "K1", Product: "converter-pro"})
	if v.Outcome != upstreams.Invalid || v.Reason != upstreams.Revoked {
		t.Fatalf("recheck right after the edit: %+v, want revoked", v)
	}
}

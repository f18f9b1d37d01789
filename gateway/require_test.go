package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/licensegate/licensegate/gateway"
)

// require: every condition applies, a refusal names the one unmet, and
// the admitted path allocates nothing more than the plain gate.
func TestGateRequirements(t *testing.T) {
	f := newGateFixture(t, "embedded") // class production, no type, no support date (supported)
	cases := []struct {
		name string
		reqs []gateway.Requirement
		want string // detail of the refusal; "" admitted
	}{
		{"support", []gateway.Requirement{{SupportActive: true}}, ""},
		{"class", []gateway.Requirement{{Classes: []string{"staging", "production"}}}, ""},
		{"type", []gateway.Requirement{{Types: []string{"extended"}}}, "This API requires a licence of type extended."},
		{"all apply", []gateway.Requirement{{SupportActive: true}, {Classes: []string{"local"}}},
			"This API requires an installation of class local."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := f.svc.Gate(nil, gateway.WithRequirements(c.reqs...))
			_, err := g.Admit(context.Background(), f.token, time.Minute)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *gateway.Error
			if !errors.As(err, &e) || e.Code != gateway.CodeRequirementNotMet || e.Detail != c.want {
				t.Fatalf("got %v, want requirement_not_met %q", err, c.want)
			}
		})
	}
	g := f.svc.Gate(nil, gateway.WithRequirements(gateway.Requirement{SupportActive: true}, gateway.Requirement{Classes: []string{"production"}}))
	if n := testing.AllocsPerRun(200, func() {
		if _, err := g.Admit(context.Background(), f.token, time.Minute); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per admitted request with require, want 0", n)
	}
}

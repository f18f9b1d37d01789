package upstreams

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAskEach(t *testing.T) {
	plain := UnknownVerdict(errors.New("HTTP 502"))
	wait := UnknownVerdict(errors.New("HTTP 429"))
	wait.RetryAfter = 30 * time.Second
	budget := UnknownVerdict(ErrRateBudget)
	notFound, revoked := InvalidVerdict(NotFound), InvalidVerdict(Revoked)
	tests := []struct {
		name    string
		answers []Verdict
		want    Verdict
		asked   int
	}{
		{"found in the second", []Verdict{notFound, valid()}, valid(), 2},
		{"not found anywhere", []Verdict{notFound, notFound}, notFound, 2},
		{"definitive refusal is final", []Verdict{revoked, valid()}, revoked, 1},
		{"unknown beats not found", []Verdict{plain, notFound}, plain, 2},
		{"unknown, then found", []Verdict{plain, valid()}, valid(), 2},
		{"retry-after stops at once", []Verdict{wait, valid()}, wait, 1},
		{"spent budget stops at once", []Verdict{notFound, budget, valid()}, budget, 2},
		{"nothing mapped", nil, notFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m ProductMap
			for range tt.answers {
				m = append(m, ProductMapping{Product: "p", VendorID: "v"})
			}
			asked := 0
			got := AskEach(context.Background(), m, func(context.Context, ProductMapping) Verdict {
				asked++
				return tt.answers[asked-1]
			})
			if got.Outcome != tt.want.Outcome || got.Reason != tt.want.Reason || got.Cause != tt.want.Cause {
				t.Fatalf("AskEach = %+v, want %+v", got, tt.want)
			}
			if asked != tt.asked {
				t.Fatalf("asked %d, want %d", asked, tt.asked)
			}
		})
	}
	t.Run("ended ctx asks nobody", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := AskEach(ctx, ProductMap{{Product: "p", VendorID: "v"}}, func(context.Context, ProductMapping) Verdict {
			t.Fatal("asked after ctx ended")
			return Verdict{}
		})
		if got.Outcome != Unknown || !errors.Is(got.Cause, context.Canceled) {
			t.Fatalf("AskEach = %+v", got)
		}
	})
}

package upstreams

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedBuyer is a BuyerDirectory whose Username spends one call of its
// Client's budget, as an HTTP request would, then answers err().
type scriptedBuyer struct {
	client  Client
	calls   atomic.Int64
	err     func() error
	recheck atomic.Bool // the last call's context was on the background share
}

func (b *scriptedBuyer) AuthCodeURL(state, verifier string) string { return "https://x/authorization" }
func (b *scriptedBuyer) Exchange(ctx context.Context, code, verifier string) (BuyerAccess, error) {
	_, err := b.Username(ctx, BuyerAccess{})
	return NewBuyerAccess("t", time.Time{}), err
}
func (b *scriptedBuyer) Purchases(ctx context.Context, a BuyerAccess) ([]Purchase, error) {
	_, err := b.Username(ctx, a)
	return nil, err
}
func (b *scriptedBuyer) Username(ctx context.Context, _ BuyerAccess) (string, error) {
	b.recheck.Store(IsRecheck(ctx))
	if err := b.client.Spend(ctx); err != nil {
		return "", BuyerUnavailable("fake", 0, 0, err)
	}
	b.calls.Add(1)
	if err := b.err(); err != nil {
		return "", err
	}
	return "buyer", nil
}

// guarded builds a source and a buyer directory on the same Client.
func guarded(t *testing.T, cfg ResilienceConfig, err func() error) (*Resilient, *scriptedBuyer, BuyerDirectory) {
	t.Helper()
	sb := &scriptedBuyer{err: err}
	r := buildBudgeted(t, &scriptedSource{verdict: valid}, cfg)
	sb.client = r.src.(*scriptedSource).client
	return r, sb, r.GuardBuyer(sb)
}

func unavailable() error {
	return BuyerUnavailable("fake", 503, 0, &StatusError{Source: "fake", Status: 503})
}
func refused() error { return &BuyerError{Source: "fake", Kind: ErrBuyerRefused} }

// TestGuardBuyerLeavesTheSourceAlone: a buyer's calls run on the buyer's
// token: their outages and rate limits neither open the source's breaker
// nor pause its budget, so activations go on (a buyer who spent their own
// token's limit elsewhere cannot halt everyone's activations by signing
// in).
func TestGuardBuyerLeavesTheSourceAlone(t *testing.T) {
	cfg := ResilienceConfig{BreakerThreshold: 2, BreakerCooldown: time.Minute, Rate: Rate{Calls: 1000, Period: time.Minute}}
	r, sb, d := guarded(t, cfg, unavailable)
	for range 5 {
		if _, err := d.Purchases(context.Background(), BuyerAccess{}); !errors.Is(err, ErrBuyerUnavailable) {
			t.Fatalf("outage: %v", err)
		}
	}
	sb.err = func() error {
		return BuyerUnavailable("fake", 429, 30*time.Second, &StatusError{Source: "fake", Status: 429})
	}
	if _, err := d.Exchange(context.Background(), "code", ""); !errors.Is(err, ErrBuyerUnavailable) {
		t.Fatalf("rate-limited buyer: %v", err)
	}
	if w := r.Budget().Wait(); w > 0 {
		t.Errorf("a buyer's 429 paused the source's budget for %s", w)
	}
	if v := r.Verify(context.Background(), Request{Key: "k"}); v.Outcome != Valid {
		t.Errorf("activation after a buyer's outages and 429: %+v", v)
	}
	sb.err = refused
	if _, err := d.Username(context.Background(), BuyerAccess{}); !errors.Is(err, ErrBuyerRefused) {
		t.Errorf("refused grant: %v", err)
	}
}

// TestGuardBuyerSpendsBackgroundShare: sign-ins spend the rechecks' share
// and leave the activations' reserve alone.
func TestGuardBuyerSpendsBackgroundShare(t *testing.T) {
	cfg := ResilienceConfig{Rate: Rate{Calls: 4, Period: time.Hour}, Burst: 4, MaxWait: 10 * time.Millisecond}
	r, sb, d := guarded(t, cfg, func() error { return nil })
	for i := range 2 {
		if _, err := d.Username(context.Background(), BuyerAccess{}); err != nil {
			t.Fatalf("sign-in %d: %v", i, err)
		}
	}
	if !sb.recheck.Load() {
		t.Error("the call was not on the background share")
	}
	_, err := d.Username(context.Background(), BuyerAccess{})
	var be *BuyerError
	if !errors.Is(err, ErrBuyerUnavailable) || !errors.As(err, &be) || be.RetryAfter <= 0 {
		t.Fatalf("third sign-in: %v, want ErrBuyerUnavailable with a RetryAfter", err)
	}
	if sb.calls.Load() != 2 {
		t.Errorf("%d calls made, want 2", sb.calls.Load())
	}
	// the reserve is still there for activations
	for i := range 2 {
		if v := r.Verify(context.Background(), Request{Key: "k" + string(rune('0'+i))}); v.Outcome != Valid {
			t.Errorf("activation %d after sign-ins: %+v", i, v)
		}
	}
}

// TestGuardBuyerPanic: a panicking directory is an unavailable answer.
func TestGuardBuyerPanic(t *testing.T) {
	_, _, d := guarded(t, ResilienceConfig{}, func() error { panic("boom") })
	if _, err := d.Username(context.Background(), BuyerAccess{}); !errors.Is(err, ErrBuyerUnavailable) {
		t.Errorf("panic: %v", err)
	}
}

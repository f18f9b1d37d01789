package gateway

import (
	"context"
	"strings"
	"testing"
)

// A retried activation with its Idempotency-Key gets the first answer, 201
// included, without a second activation; the same key for another request
// is refused; another buyer's constant key does not collide.
func TestActivateIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := ActivateRequest{Key: "KEY-1", Domain: "a.com"}
	first, err := f.svc.ActivateIdempotent(ctx, "retry-1", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.ActivateIdempotent(ctx, "retry-1", req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Created || again.AccessToken != first.AccessToken || again.RefreshToken != first.RefreshToken {
		t.Fatalf("replay differs from the first answer:\n%+v\n%+v", first, again)
	}
	if calls := f.src.calls; calls != 1 {
		t.Fatalf("%d source calls, want 1", calls)
	}
	if got := f.audited(); len(got) != 1 {
		t.Fatalf("audit %v, want one installation", got)
	}

	other := req
	other.Domain = "b.com"
	_, err = f.svc.ActivateIdempotent(ctx, "retry-1", other)
	wantCode(t, err, CodeIdempotencyKeyReused)

	// Scoped to the licence key: the same Idempotency-Key for another key
	// is another activation.
	b, err := f.svc.ActivateIdempotent(ctx, "retry-1", ActivateRequest{Key: "KEY-2", Domain: "b.com"})
	if err != nil || !b.Created || b.InstallationID == first.InstallationID {
		t.Fatalf("another key under the same Idempotency-Key: %+v, %v", b, err)
	}

	_, err = f.svc.ActivateIdempotent(ctx, strings.Repeat("k", maxIdempotencyKey+1), req)
	if e := wantCode(t, err, CodeValidationFailed); len(e.Fields["Idempotency-Key"]) == 0 {
		t.Fatalf("fields %v", e.Fields)
	}
}

// A refused activation is not remembered: the retry is decided afresh.
func TestActivateIdempotentRefusalIsNotKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.activate("KEY-1", "a.com")
	req := ActivateRequest{Key: "KEY-1", Domain: "b.com"}
	_, err := f.svc.ActivateIdempotent(ctx, "k", req)
	wantCode(t, err, CodeActivationLimit)
	f.svc.cfg.Products["p"].Rules.Activations = 2 // the author sold a second slot
	if a, err := f.svc.ActivateIdempotent(ctx, "k", req); err != nil || !a.Created {
		t.Fatalf("retry after a refusal: %+v, %v", a, err)
	}
}

// Without a key, every call is an activation of its own (the same domain
// answers the same installation, 200).
func TestActivateWithoutIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := ActivateRequest{Key: "KEY-1", Domain: "a.com"}
	a, err := f.svc.ActivateIdempotent(ctx, "", req)
	if err != nil || !a.Created {
		t.Fatal(a, err)
	}
	b, err := f.svc.ActivateIdempotent(ctx, "", req)
	if err != nil || b.Created || b.InstallationID != a.InstallationID || b.AccessToken == a.AccessToken {
		t.Fatalf("second activation: %+v, %v", b, err)
	}
}

// Review finding on N1: an Idempotency-Key replay from another network is
// not the same request: it is refused, never handed the first answer.
func TestIdempotentReplayFromAnotherNetwork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := ActivateRequest{Key: "KEY-1", Domain: "buyer.com", ClientIP: "198.51.100.7"}
	first, err := f.svc.ActivateIdempotent(ctx, "constant-key", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.svc.ActivateIdempotent(ctx, "constant-key", req)
	if err != nil || again.AccessToken != first.AccessToken {
		t.Fatalf("the same client's retry: %v", err)
	}
	req.ClientIP = "203.0.113.9"
	_, err = f.svc.ActivateIdempotent(ctx, "constant-key", req)
	wantCode(t, err, CodeIdempotencyKeyReused)
}

package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store/embedded"
)

// TestEmailLinkOnceAndUntilItExpires: a sign-in link redeems once, and
// not after its TTL (on the store's injected clock).
func TestEmailLinkOnceAndUntilItExpires(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second, embedded.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	master, err := secret.New([]byte("buyer-test-master-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Master: master, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	link := EmailLink{Email: "carol@example.com", Licenses: []string{"lic_1"}}
	token, err := svc.IssueEmailLink(ctx, link, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.RedeemEmailLink(ctx, token, 15*time.Minute)
	if err != nil || got.Email != link.Email || len(got.Licenses) != 1 {
		t.Fatalf("first redemption = %+v, %v", got, err)
	}
	if _, err := svc.RedeemEmailLink(ctx, token, 15*time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("second redemption: %v, want ErrNotFound", err)
	}
	late, err := svc.IssueEmailLink(ctx, link, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(16 * time.Minute)
	if _, err := svc.RedeemEmailLink(ctx, late, 15*time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("a link 16 minutes old: %v, want ErrNotFound", err)
	}
	if _, err := svc.RedeemEmailLink(ctx, token[:len(token)-1]+"x", 15*time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("a tampered token: %v, want ErrNotFound", err)
	}
}

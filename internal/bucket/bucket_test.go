package bucket

import (
	"testing"
	"time"
)

func TestTakeRefillRefund(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := New(30*time.Second, 2) // 2 a minute
	for i := range 2 {
		if ok, _ := b.Take(t0); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	if ok, wait := b.Take(t0); ok || wait != 30*time.Second {
		t.Fatalf("third call: %v, wait %s; want refused for 30s", ok, wait)
	}
	b.Refund(t0)
	if ok, _ := b.Take(t0); !ok {
		t.Fatal("a refunded call is not there")
	}
	if ok, wait := b.Take(t0.Add(20 * time.Second)); ok || wait != 10*time.Second {
		t.Fatalf("after 20s: %v, wait %s; want refused for 10s", ok, wait)
	}
	if ok, _ := b.Take(t0.Add(30 * time.Second)); !ok {
		t.Fatal("no call after one refill interval")
	}
	// Refunds never overfill; a full bucket reports so.
	later := t0.Add(time.Hour)
	b.Refund(later)
	b.Refund(later)
	if got := b.TokensAt(later); got != 2 || !b.Full(later) {
		t.Fatalf("tokens %v after refunds into a full bucket, want 2", got)
	}
	// A clock that steps back (the owner's clocks differ) takes nothing away.
	if ok, _ := b.Take(t0); !ok {
		t.Fatal("earlier time refused")
	}
}

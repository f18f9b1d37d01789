package gateway

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestScheduledKeyRotation(t *testing.T) {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	master, _ := secret.New([]byte("rotation-test-secret-0123456789abcdef"))
	clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	newService := func() *Service {
		svc, err := New(Config{Store: st, Master: master, Issuer: "iss", KeyRotation: 24 * time.Hour, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.LoadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a, b := newService(), newService() // two instances on one store
	first := a.ring.CurrentKeyID()
	if b.ring.CurrentKeyID() != first {
		t.Fatal("instances do not share the key ring")
	}
	clk.Advance(23 * time.Hour)
	a.rotateIfDue(context.Background())
	if a.ring.CurrentKeyID() != first {
		t.Fatal("rotated before the key was due")
	}
	clk.Advance(2 * time.Hour)
	a.rotateIfDue(context.Background())
	b.rotateIfDue(context.Background()) // same moment: must not add a second key
	second := a.ring.CurrentKeyID()
	if second == first {
		t.Fatal("did not rotate a key past key_rotation")
	}
	if b.ring.CurrentKeyID() != second {
		t.Fatalf("instance B made its own key %s instead of adopting %s", b.ring.CurrentKeyID(), second)
	}
	keys, _ := st.SigningKeys(context.Background())
	if len(keys) != 2 {
		t.Fatalf("%d keys stored, want 2", len(keys))
	}
	evs, _ := st.Audit(context.Background(), store.AuditQuery{Limit: 10})
	if len(evs) != 1 || evs[0].Action != store.AuditKeysRotated || evs[0].Reason != "schedule" {
		t.Fatalf("audit: %+v", evs)
	}
}

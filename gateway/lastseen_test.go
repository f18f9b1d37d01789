package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// outageStore refuses last-seen batches while down.
type outageStore struct {
	store.Store
	down  bool
	tries int
}

func (o *outageStore) RecordSeen(ctx context.Context, seen []store.Seen) error {
	o.tries++
	if o.down {
		return store.ErrUnavailable
	}
	return o.Store.RecordSeen(ctx, seen)
}

// The gate notes uses; a flush writes the latest per installation, shown
// by the admin views and the 409 activations list; a store outage keeps
// the noted uses for the next flush.
func TestLastSeenRecordedInBatches(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			out := &outageStore{Store: f.store}
			f.svc.cfg.Store = out
			a := f.activate("KEY-1", "acme.com")
			g := f.svc.Gate(nil)
			admit := func() {
				t.Helper()
				if _, err := g.Admit(context.Background(), a.AccessToken, 0); err != nil {
					t.Fatal(err)
				}
			}
			admit()
			f.clock.Advance(30 * time.Second)
			seen := f.clock.Now()
			admit()

			out.down = true
			if err := f.svc.FlushLastSeen(context.Background()); err == nil {
				t.Fatal("a flush during an outage succeeded")
			}
			d, err := f.svc.License(context.Background(), a.License.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Installations[0].LastSeenAt != nil {
				t.Fatalf("last seen %v before any batch was taken", d.Installations[0].LastSeenAt)
			}
			out.down = false
			if err := f.svc.FlushLastSeen(context.Background()); err != nil {
				t.Fatal(err)
			}
			ins, _, err := f.svc.Installation(context.Background(), a.InstallationID)
			if err != nil {
				t.Fatal(err)
			}
			if ins.LastSeenAt == nil || !ins.LastSeenAt.Equal(seen) {
				t.Fatalf("installation view last_seen_at %v, want %v", ins.LastSeenAt, seen)
			}
			// Nothing new: nothing written.
			tries := out.tries
			if err := f.svc.FlushLastSeen(context.Background()); err != nil || out.tries != tries {
				t.Fatalf("an idle flush reached the store (%v)", err)
			}
			// The 409 list shows it.
			_, err = f.svc.Activate(context.Background(), ActivateRequest{Key: "KEY-1", Domain: "other.com"})
			e := wantCode(t, err, CodeActivationLimit)
			if len(e.Activations) != 1 || e.Activations[0].LastSeenAt == nil || !e.Activations[0].LastSeenAt.Equal(seen) {
				t.Fatalf("409 activations %+v", e.Activations)
			}
		})
	}
}

// A pending map is bounded: past the bound, new installations are not
// noted (until a batch is taken), and the gate still admits.
func TestSeenTrackerBounded(t *testing.T) {
	tr := newSeenTracker()
	now := time.Unix(0, 0)
	for i := 0; i < maxSeenPending+5000; i++ {
		tr.touch("ins_"+strconv.Itoa(i), "lic", "", now)
	}
	n := 0
	for i := range tr.shards {
		n += len(tr.shards[i].m)
	}
	if n > maxSeenPending {
		t.Fatalf("%d pending entries, bound %d", n, maxSeenPending)
	}
}

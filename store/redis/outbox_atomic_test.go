package redis_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	redisstore "github.com/licensegate/licensegate/store/redis"
)

// roundTrips records the commands of each round trip a client makes.
type roundTrips struct {
	mu    sync.Mutex
	trips [][]string
}

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.add([]goredis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.add(cmds)
		return next(ctx, cmds)
	}
}

func (r *roundTrips) add(cmds []goredis.Cmder) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = strings.ToLower(c.Name())
	}
	r.mu.Lock()
	r.trips = append(r.trips, names)
	r.mu.Unlock()
}

// writes returns the round trips since the last call that write, and
// forgets them all.
func (r *roundTrips) writes() [][]string {
	writing := []string{"hset", "hdel", "zadd", "zrem", "incr", "incrby", "decr", "del", "set", "xadd", "eval", "evalsha", "exec"}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, t := range r.trips {
		if slices.ContainsFunc(t, func(n string) bool { return slices.Contains(writing, n) }) {
			out = append(out, t)
		}
	}
	r.trips = nil
	return out
}

// oneWrite reports whether a round trip is one command or one MULTI/EXEC.
func oneWrite(trip []string) bool {
	return len(trip) == 1 || trip[0] == "multi" && trip[len(trip)-1] == "exec"
}

// TestOutboxSettleAndRetryAreAtomic: on one Redis node, settling an entry
// and retrying a failed one each change the entry, its queue, the index,
// the failed set and the pending count in one script or one MULTI/EXEC.
// A follow-up write is what a crash between two round trips loses: an
// entry pending again but out of the index would never be claimed (only
// Cluster repairs the index), one failed but out of the failed set would
// not be listed as failed.
func TestOutboxSettleAndRetryAreAtomic(t *testing.T) {
	b := newBackend(redistest.StartServer(t))
	c := b.client(t)
	trips := &roundTrips{}
	c.AddHook(trips)
	s := redisstore.New(c, redisstore.Options{KeyPrefix: "atomic:"})
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	now := time.Now()
	for _, lic := range []string{"lic_warm", "lic_x"} {
		_, err := s.UpdateLicense(ctx, lic, func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License = &store.License{ID: lic, Status: store.LicenseActive}
			st.Events = []store.AuditEvent{{Action: store.AuditLicenseLocked, LicenseID: lic, At: now}}
			return st, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.ClaimOutbox(ctx, now, time.Minute, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("ClaimOutbox: %d entries, %v", len(es), err)
	}
	if es[0].Event.LicenseID != "lic_warm" {
		es[0], es[1] = es[1], es[0]
	}
	warm, x := es[0], es[1]
	warm.Status, warm.DoneAt, warm.Attempts = store.OutboxDelivered, now, 1
	if err := s.SettleOutbox(ctx, warm); err != nil { // loads the script
		t.Fatal(err)
	}
	trips.writes()

	x.Status, x.DoneAt, x.Attempts = store.OutboxFailed, now, 3
	if err := s.SettleOutbox(ctx, x); err != nil {
		t.Fatal(err)
	}
	if w := trips.writes(); len(w) != 1 || !oneWrite(w[0]) {
		t.Errorf("settle as failed wrote in %d round trips %v, want one script", len(w), w)
	}
	failed, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
	if err != nil || len(failed) != 1 || failed[0].ID != x.ID {
		t.Fatalf("failed entries %+v, %v; want %s", failed, err, x.ID)
	}
	if n, err := s.OutboxPending(ctx); err != nil || n != 0 {
		t.Fatalf("pending after the settles: %d, %v", n, err)
	}
	trips.writes()

	if err := s.RetryOutbox(ctx, x.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if w := trips.writes(); len(w) != 1 || !oneWrite(w[0]) {
		t.Errorf("retry wrote in %d round trips %v, want one MULTI/EXEC", len(w), w)
	}
	if failed, _, _ := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: 10}); len(failed) != 0 {
		t.Errorf("failed entries after the retry: %+v", failed)
	}
	if n, err := s.OutboxPending(ctx); err != nil || n != 1 {
		t.Errorf("pending after the retry: %d, %v; want 1", n, err)
	}
	again, err := s.ClaimOutbox(ctx, now.Add(time.Minute), time.Minute, 10)
	if err != nil || len(again) != 1 || again[0].ID != x.ID {
		t.Errorf("claim after the retry: %+v, %v; want %s (the index holds its queue)", again, err, x.ID)
	}
}

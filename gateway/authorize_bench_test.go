package gateway_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/tokens"
)

// countingStore counts every call that reaches the store.
type countingStore struct {
	store.Store
	calls atomic.Int64
}

func (c *countingStore) LicenseState(ctx context.Context, id string) (*store.LicenseState, error) {
	c.calls.Add(1)
	return c.Store.LicenseState(ctx, id)
}

// RecordSeen passes the last-seen batches on (counted).
func (c *countingStore) RecordSeen(ctx context.Context, seen []store.Seen) error {
	c.calls.Add(1)
	return c.Store.RecordSeen(ctx, seen)
}

// AddQuota passes the quota batches on (counted).
func (c *countingStore) AddQuota(ctx context.Context, d []store.QuotaDelta) ([]int64, error) {
	c.calls.Add(1)
	return c.Store.AddQuota(ctx, d)
}

// roundTrips counts commands sent to Redis.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

type gateFixture struct {
	svc     *gateway.Service
	gate    *gateway.Gate
	plain   *gateway.Gate // no quota
	quota   *gateway.Gate // quota 10^12/h
	token   string
	counted *countingStore
	trips   *roundTrips // nil for embedded
}

// newGateFixture stores one licence with one installation, issues its
// token, and warms the gate's cache with one request.
func newGateFixture(tb testing.TB, backend string) *gateFixture {
	tb.Helper()
	f := &gateFixture{}
	var st store.Store
	switch backend {
	case "embedded":
		e, err := embedded.Open(filepath.Join(tb.TempDir(), "lg.db"), time.Second)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { e.Close() })
		st = e
	case "redis":
		srv := redistest.NewServer(tb)
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		f.trips = &roundTrips{}
		client.AddHook(f.trips)
		tb.Cleanup(func() { client.Close() })
		rs := redisstore.New(client, redisstore.Options{})
		tb.Cleanup(func() { rs.Close() })
		st = rs
	}
	f.counted = &countingStore{Store: st}
	master, err := secret.New([]byte("bench-secret-0123456789abcdefghijklmnop"))
	if err != nil {
		tb.Fatal(err)
	}
	f.svc, err = gateway.New(gateway.Config{
		Store: f.counted, Master: master, Issuer: "https://gw.test", AccessTTL: time.Hour,
		Products:     map[string]*gateway.Product{"p": {Name: "p", Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	// The same ring, over the same store, signs the fixture's token.
	ring := tokens.NewRing(st, master, nil)
	if err := ring.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	issuer := tokens.NewIssuer(ring, "https://gw.test", time.Hour)
	now := time.Now()
	_, err = st.UpdateLicense(context.Background(), "lic_bench", func(s *store.LicenseState) (*store.LicenseState, error) {
		s.License = &store.License{ID: "lic_bench", Product: "p", Source: "static", Status: store.LicenseActive, CreatedAt: now}
		s.Installations = []store.Installation{{ID: "ins_bench", LicenseID: "lic_bench", Product: "p", Domain: "acme.com",
			InstallClass: "production", Status: store.InstallationActive, Generation: 1, CreatedAt: now}}
		return s, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	f.token, err = issuer.Issue(tokens.Claims{Audience: "p", Subject: "ins_bench", License: "lic_bench", Domain: "acme.com", Class: "production", Generation: 1})
	if err != nil {
		tb.Fatal(err)
	}
	f.plain = f.svc.Gate(nil)
	f.quota = f.svc.Gate(nil, gateway.WithQuota(gateway.Quota{Limit: 1e12, Period: time.Hour}))
	f.gate = f.plain
	f.authorize(tb) // warm the cache
	f.gate = f.quota
	f.authorize(tb) // and the quota entry
	f.gate = f.plain
	return f
}

// authorize is the gate's per-request work: verify the token, check the
// installation and licence.
func (f *gateFixture) authorize(tb testing.TB) {
	if _, err := f.gate.Admit(context.Background(), f.token, 10*time.Minute); err != nil {
		tb.Fatal(err)
	}
}

func (f *gateFixture) storeTrips() int64 {
	n := f.counted.calls.Load()
	if f.trips != nil {
		n += f.trips.n.Load()
	}
	return n
}

// TestGateDoesNoStoreIOInSteadyState: after the first request, a thousand
// more reach neither the store nor the network, last-seen noting
// included, through a gate with a quota; their last-seen time and quota
// count reach the store in one batch each, written by the last_seen and
// quota_sync workers outside the request path.
func TestGateDoesNoStoreIOInSteadyState(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newGateFixture(t, backend)
			f.gate = f.quota
			before := f.storeTrips()
			for i := 0; i < 1000; i++ {
				f.authorize(t)
			}
			if n := f.storeTrips() - before; n != 0 {
				t.Fatalf("%d store round trips for 1000 gated requests in steady state, want 0", n)
			}
			calls := f.counted.calls.Load()
			if err := f.svc.FlushLastSeen(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.counted.calls.Load() - calls; n != 1 {
				t.Fatalf("%d store calls to record the last-seen batch, want 1", n)
			}
			t.Logf("%s: the last-seen batch took %d round trip(s)", backend, f.storeTrips()-before)
			st, err := f.counted.Store.LicenseState(context.Background(), "lic_bench")
			if err != nil || st.Installation("ins_bench").LastSeenAt.IsZero() {
				t.Fatalf("last seen not recorded: %v", err)
			}
			before = f.storeTrips()
			if err := f.svc.FlushLastSeen(context.Background()); err != nil || f.storeTrips() != before {
				t.Fatalf("a flush with nothing new reached the store (%v)", err)
			}
			calls = f.counted.calls.Load()
			if err := f.svc.SyncQuota(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := f.counted.calls.Load() - calls; n != 1 {
				t.Fatalf("%d store calls to sync the quota counts, want 1", n)
			}
		})
	}
}

// BenchmarkAuthorize measures the gate's authorize path (last-seen noting
// included) and reports the store round trips per request (0 in steady
// state); the quota case adds a per-installation quota.
func BenchmarkAuthorize(b *testing.B) {
	for _, backend := range []string{"embedded", "redis", "embedded/quota", "redis/quota"} {
		b.Run(backend, func(b *testing.B) {
			name, withQuota := strings.CutSuffix(backend, "/quota")
			f := newGateFixture(b, name)
			if withQuota {
				f.gate = f.quota
			}
			before := f.storeTrips()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.authorize(b)
			}
			b.StopTimer()
			b.ReportMetric(float64(f.storeTrips()-before)/float64(b.N), "store-trips/op")
		})
	}
}

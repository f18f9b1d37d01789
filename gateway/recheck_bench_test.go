package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/upstreams"
)

// The recheck worker's cost and memory against the number of licences
// (issue 10 acceptance 5): one RecheckOnce step (claim a batch of 16, ask
// the source, write each result) with 10,000 and with a million licences
// due in Redis. Allocations per step and the heap after the run stay the
// same: the worker holds one batch, never the index. Run with
//
//	go test -run '^$' -bench RecheckWorker -benchtime 200x ./gateway/
//
// LICENSEGATE_BENCH_LICENSES sets the larger size (default 1,000,000).

// validRechecker answers every recheck valid, without I/O.
type validRechecker struct{ asked int }

func (*validRechecker) Name() string                          { return "keys" }
func (*validRechecker) CanonicalKey(k string) (string, error) { return k, nil }
func (r *validRechecker) Verify(context.Context, upstreams.Request) upstreams.Verdict {
	return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
}
func (r *validRechecker) Recheck(context.Context, upstreams.RecheckRequest) upstreams.Verdict {
	r.asked++
	return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
}

func BenchmarkRecheckWorker(b *testing.B) {
	large := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("LICENSEGATE_BENCH_LICENSES")); err == nil && n > 0 {
		large = n
	}
	for _, n := range []int{10_000, large} {
		b.Run(fmt.Sprintf("licenses=%d", n), func(b *testing.B) { benchWorker(b, n) })
	}
}

func benchWorker(b *testing.B, n int) {
	srv := redistest.NewServer(b)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	st := redisstore.New(client, redisstore.Options{})
	b.Cleanup(func() { _ = st.Close() })
	master, err := secret.New([]byte("bench-secret-0123456789abcdefghijklmnop"))
	if err != nil {
		b.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	src := &validRechecker{}
	svc, err := New(Config{Store: st, Master: master, Now: clock.Now, Sources: map[string]upstreams.Source{"keys": src},
		Products: map[string]*Product{"p": {Name: "p", Sources: []string{"keys"}, Recheck: policy.RecheckRules{Every: 6 * time.Hour}}}})
	if err != nil {
		b.Fatal(err)
	}
	// n licences due over the last n seconds, written as UpdateLicense
	// leaves them (P{<id>}:state and the P{due} index; key layout in
	// store/redis), pipelined.
	ctx := context.Background()
	now := clock.Now()
	for start := 0; start < n; start += 10_000 {
		_, err := client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := start; i < min(start+10_000, n); i++ {
				id := fmt.Sprintf("lic_%08d", i)
				next := now.Add(time.Duration(i-n) * time.Second)
				lic := &store.License{ID: id, Product: "p", Source: "keys", Status: store.LicenseActive,
					KeyCiphertext: master.Seal([]byte("KEY-"+strings.Repeat("x", 28)), []byte(id)), NextCheckAt: next, Version: 1}
				raw, _ := json.Marshal(map[string]any{"license": lic, "installations": []store.Installation{}})
				p.Set(ctx, "lg:{"+id+"}:state", raw, 0)
				p.ZAdd(ctx, "lg:{due}", goredis.Z{Score: float64(next.UnixMilli()), Member: id})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if b.N*RecheckBatch > n {
		b.Fatalf("%d steps of %d would run out of %d due licences", b.N, RecheckBatch, n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := svc.RecheckOnce(ctx)
		if err != nil || got != RecheckBatch {
			b.Fatalf("RecheckOnce: %d, %v", got, err)
		}
	}
	b.StopTimer()
	if src.asked != b.N*RecheckBatch {
		b.Fatalf("asked %d, want %d", src.asked, b.N*RecheckBatch)
	}
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heapMB")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*RecheckBatch), "µs/licence")
}

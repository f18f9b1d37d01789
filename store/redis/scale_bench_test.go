package redis

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/storetest"
)

// The recheck's scale on Redis (issue 10 acceptance 5): the cost of
// scheduling and claiming one due licence with a million licences in the
// due index. Run with
//
//	go test -run '^$' -bench Scale -benchtime 20000x ./store/redis/
//
// LICENSEGATE_BENCH_LICENSES sets the index size (default 1,000,000). The
// licences are minimal states (id, status, next check) written with
// pipelined SET and ZADD, as UpdateLicense would leave them.

func loadIndex(b *testing.B, n int) (*Store, *redis.Client) {
	b.Helper()
	srv := redistest.NewServer(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = client.Close() })
	s := New(client, Options{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	const batch = 10_000
	for start := 0; start < n; start += batch {
		_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+batch, n); i++ {
				id := storetest.ScaleID(i)
				next := storetest.ScaleNext(i, n)
				raw, _ := json.Marshal(stateRecord{License: &store.License{ID: id, Status: store.LicenseActive, NextCheckAt: next, Version: 1}})
				p.Set(ctx, s.stateKey(id), raw, 0)
				p.ZAdd(ctx, s.dueKey(), redis.Z{Score: float64(next.UnixMilli()), Member: id})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if got := client.ZCard(ctx, s.dueKey()).Val(); got != int64(n) {
		b.Fatalf("index holds %d, want %d", got, n)
	}
	return s, client
}

func reportMemory(b *testing.B, client *redis.Client) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heapMB")
	if info, err := client.MemoryUsage(context.Background(), DefaultKeyPrefix+"{due}").Result(); err == nil {
		b.ReportMetric(float64(info)/(1<<20), "indexMB")
	}
}

// BenchmarkScaleClaimDue claims one due licence per op (one script run).
func BenchmarkScaleClaimDue(b *testing.B) {
	s, client := loadIndex(b, storetest.ScaleLicenses())
	storetest.BenchClaimDue(b, s)
	reportMemory(b, client)
}

// BenchmarkScaleSchedule moves one licence's next check per op (the
// worker's write of a result, re-indexed by dueScript).
func BenchmarkScaleSchedule(b *testing.B) {
	n := storetest.ScaleLicenses()
	s, client := loadIndex(b, n)
	storetest.BenchSchedule(b, s, n)
	reportMemory(b, client)
}

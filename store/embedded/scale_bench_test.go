package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// The recheck's scale (SPEC section 11, issue 10 acceptance 5): the cost of
// scheduling and claiming one due licence with a million licences in the
// index. Run with
//
//	go test -run '^$' -bench Scale -benchtime 20000x ./store/embedded/
//
// LICENSEGATE_BENCH_LICENSES sets the index size (default 1,000,000). The
// licences are minimal records (id, status, next check) written straight
// into bbolt in large transactions: a million UpdateLicense calls would
// each fsync.

var benchT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func benchLicenses() int {
	if n, err := strconv.Atoi(os.Getenv("LICENSEGATE_BENCH_LICENSES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// loadIndex writes n minimal licences, licence i due at benchT0 - n + i
// seconds, so all are due at benchT0 and the earliest go first.
func loadIndex(b *testing.B, n int) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "lg.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	s.db.NoSync = true
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			lics, due := tx.Bucket(bucketLicenses), tx.Bucket(bucketDue)
			lics.FillPercent, due.FillPercent = 1, 1 // appended in key order
			for i := start; i < min(start+batch, n); i++ {
				id := fmt.Sprintf("lic_%08d", i)
				next := benchT0.Add(time.Duration(i-n) * time.Second)
				if err := putJSON(lics, id, &store.License{ID: id, Status: store.LicenseActive, NextCheckAt: next, Version: 1}); err != nil {
					return err
				}
				if err := due.Put(dueKey(next, id), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	s.db.NoSync = false
	return s
}

func reportHeap(b *testing.B) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heapMB")
}

// BenchmarkScaleClaimDue claims one due licence per op.
func BenchmarkScaleClaimDue(b *testing.B) {
	n := benchLicenses()
	s := loadIndex(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids, err := s.ClaimDue(ctx, benchT0, 1, time.Hour)
		if err != nil || len(ids) != 1 {
			b.Fatalf("ClaimDue: %v, %v", ids, err)
		}
	}
	b.StopTimer()
	reportHeap(b)
}

// BenchmarkScaleSchedule moves one licence's next check per op (the
// worker's write of a result): re-indexing is a delete and a put.
func BenchmarkScaleSchedule(b *testing.B) {
	n := benchLicenses()
	s := loadIndex(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("lic_%08d", (i*7919)%n)
		if _, err := s.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License.NextCheckAt = benchT0.Add(time.Duration(i) * time.Second)
			return st, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportHeap(b)
}

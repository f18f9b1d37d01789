package embedded

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/storetest"
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

// loadIndex writes n minimal licences, licence i due at storetest.ScaleT0 - n + i
// seconds, so all are due at storetest.ScaleT0 and the earliest go first.
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
				id := storetest.ScaleID(i)
				next := storetest.ScaleNext(i, n)
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
	storetest.BenchClaimDue(b, loadIndex(b, storetest.ScaleLicenses()))
	reportHeap(b)
}

// BenchmarkScaleSchedule moves one licence's next check per op (the
// worker's write of a result): re-indexing is a delete and a put.
func BenchmarkScaleSchedule(b *testing.B) {
	n := storetest.ScaleLicenses()
	storetest.BenchSchedule(b, loadIndex(b, n), n)
	reportHeap(b)
}

package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// The recheck's scale benchmarks (SPEC section 11, issue 10 acceptance 5),
// shared by both stores: each backend loads its index its own fast way
// (a million UpdateLicense calls would take too long), then runs these.

// ScaleT0 is when every licence of a loaded index is due.
var ScaleT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// ScaleLicenses is the index size: LICENSEGATE_BENCH_LICENSES, default
// 1,000,000.
func ScaleLicenses() int {
	if n, err := strconv.Atoi(os.Getenv("LICENSEGATE_BENCH_LICENSES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// ScaleID is the id of licence i of a loaded index.
func ScaleID(i int) string { return fmt.Sprintf("lic_%08d", i) }

// ScaleNext is licence i's next check in an index of n: all are due at
// ScaleT0, the earliest first.
func ScaleNext(i, n int) time.Time { return ScaleT0.Add(time.Duration(i-n) * time.Second) }

// BenchClaimDue claims one due licence per op from a loaded index.
func BenchClaimDue(b *testing.B, s store.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ids, err := s.ClaimDue(ctx, ScaleT0, 1, time.Hour)
		if err != nil || len(ids) != 1 {
			b.Fatalf("ClaimDue: %v, %v", ids, err)
		}
	}
	b.StopTimer()
}

// BenchSchedule moves one licence's next check per op in an index of n
// (the worker's write of a result, which re-indexes the licence).
func BenchSchedule(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.UpdateLicense(ctx, ScaleID((i*7919)%n), func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License.NextCheckAt = ScaleT0.Add(time.Duration(i) * time.Second)
			return st, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

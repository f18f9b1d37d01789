package embedded_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

// TestDailyPruned: a day last written more than DailyRetention ago (by
// the store's clock) is dropped by the next write, entries and all.
func TestDailyPruned(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second, embedded.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	add := func(day time.Time) {
		t.Helper()
		if err := s.AddDaily(ctx, []store.DailyDelta{{Day: day, Series: "activations", N: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	first := clock
	add(first)
	clock = clock.Add(store.DailyRetention - time.Hour)
	add(clock) // within the retention: the first day stays
	if got, _ := s.Daily(ctx, []string{"activations"}, first, first); got["activations"][0] != 1 {
		t.Fatalf("day within the retention: %v", got)
	}
	clock = clock.Add(2 * time.Hour)
	add(clock)
	if got, _ := s.Daily(ctx, []string{"activations"}, first, first); got["activations"][0] != 0 {
		t.Errorf("day past the retention still counts: %v", got)
	}
	if n, err := embedded.CountKeys(s, store.DayKey(first)); err != nil || n != 0 {
		t.Errorf("%d entries of the pruned day left (%v)", n, err)
	}
}

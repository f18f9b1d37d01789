package store_test

import (
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func TestValidSeries(t *testing.T) {
	for name, want := range map[string]bool{
		"activations": true, "gate:admitted": true, "gate:license_suspended": true, "v1.2-x": true,
		"": false, "Gate:Admitted": false, "a b": false, "a|b": false, "é": false,
		"123456789012345678901234567890123456789012345678":  true,
		"1234567890123456789012345678901234567890123456789": false,
	} {
		if got := store.ValidSeries(name); got != want {
			t.Errorf("ValidSeries(%q) = %t, want %t", name, got, want)
		}
	}
}

func TestDailyDays(t *testing.T) {
	from := time.Date(2026, 3, 14, 23, 0, 0, 0, time.FixedZone("x", -2*3600)) // 2026-03-15 01:00 UTC
	days, err := store.DailyDays([]string{"activations"}, from, from.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-03-15", "2026-03-16", "2026-03-17"}
	if len(days) != len(want) {
		t.Fatalf("%d days, want %d", len(days), len(want))
	}
	for i, d := range days {
		if store.DayKey(d) != want[i] || !d.Equal(store.Day(d)) {
			t.Errorf("day %d = %v, want the start of %s UTC", i, d, want[i])
		}
	}
}

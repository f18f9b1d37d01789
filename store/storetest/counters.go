package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// day is t0's day moved by n days.
func day(n int) time.Time { return store.Day(t0).AddDate(0, 0, n) }

// daily reads series over days [from, to] of t0, failing the test on error.
func daily(t *testing.T, s store.Store, from, to int, series ...string) map[string][]int64 {
	t.Helper()
	got, err := s.Daily(context.Background(), series, day(from), day(to))
	if err != nil {
		t.Fatalf("Daily(%v): %v", series, err)
	}
	return got
}

// testDailyCounters: counts add up per series and day, across batches
// and instances; a read gives one value per day, zero-filled, for any
// series asked; a bad batch writes nothing.
func testDailyCounters(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	other := s
	if h.cfg.peer != nil {
		other = h.cfg.peer(t, s)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddDaily(ctx, []store.DailyDelta{
		{Day: day(0), Series: "activations", N: 2},
		{Day: day(0).Add(23 * time.Hour), Series: "activations", N: 1}, // the same UTC day
		{Day: day(0), Series: "gate:admitted", N: 40},
		{Day: day(2), Series: "activations", N: 5},
		{Day: day(2), Series: "gate:quota_exceeded", N: 0}, // nothing: not even a field
	}))
	must(other.AddDaily(ctx, []store.DailyDelta{{Day: day(2), Series: "activations", N: 1}, {Day: day(3), Series: "activations", N: 7}}))
	must(s.AddDaily(ctx, nil))

	got := daily(t, s, -1, 3, "activations", "gate:admitted", "gate:quota_exceeded")
	want := map[string][]int64{
		"activations":         {0, 3, 0, 6, 7},
		"gate:admitted":       {0, 40, 0, 0, 0},
		"gate:quota_exceeded": {0, 0, 0, 0, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Daily = %v, want %v", got, want)
	}
	if got := daily(t, s, 0, 0); len(got) != 0 {
		t.Errorf("Daily of no series = %v, want none", got)
	}

	bad := map[string][]store.DailyDelta{
		"an invalid series":  {{Day: day(0), Series: "activations", N: 1}, {Day: day(0), Series: "Gate:Admitted", N: 1}},
		"a negative count":   {{Day: day(0), Series: "activations", N: 1}, {Day: day(0), Series: "gate:admitted", N: -1}},
		"an overlong series": {{Day: day(0), Series: fmt.Sprintf("%049d", 0), N: 1}},
	}
	for what, batch := range bad {
		if err := s.AddDaily(ctx, batch); !errors.Is(err, store.ErrBadCounter) {
			t.Errorf("AddDaily with %s = %v, want ErrBadCounter", what, err)
		}
	}
	if got := daily(t, s, 0, 0, "activations"); got["activations"][0] != 3 {
		t.Errorf("a refused batch was written in part: activations %v", got["activations"])
	}
	for what, span := range map[string][2]time.Time{
		"to before from":    {day(1), day(0)},
		"too many days":     {day(0), day(store.MaxDailyDays)},
		"an invalid series": {day(0), day(0)},
	} {
		series := []string{"activations"}
		if what == "an invalid series" {
			series = []string{"a b"}
		}
		if _, err := s.Daily(ctx, series, span[0], span[1]); !errors.Is(err, store.ErrBadCounter) {
			t.Errorf("Daily with %s = %v, want ErrBadCounter", what, err)
		}
	}
	if _, err := s.Daily(ctx, []string{"activations"}, day(0), day(store.MaxDailyDays-1)); err != nil {
		t.Errorf("Daily of MaxDailyDays days: %v", err)
	}
}

// testDailySeriesBound: a day holds at most MaxDailySeries series; what
// further series add is counted under SeriesOther, and a series the day
// holds already still counts as itself.
func testDailySeriesBound(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	var batch []store.DailyDelta
	var names []string
	for i := range store.MaxDailySeries + 3 {
		name := fmt.Sprintf("s%03d", i)
		names = append(names, name)
		batch = append(batch, store.DailyDelta{Day: day(0), Series: name, N: 1})
	}
	if err := s.AddDaily(ctx, batch[:store.MaxDailySeries]); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDaily(ctx, append(batch[store.MaxDailySeries:], store.DailyDelta{Day: day(0), Series: names[0], N: 1})); err != nil {
		t.Fatal(err)
	}
	got := daily(t, s, 0, 0, append(names, store.SeriesOther)...)
	if got[names[0]][0] != 2 || got[names[store.MaxDailySeries-1]][0] != 1 {
		t.Errorf("series within the bound: %s %v, %s %v; want 2 and 1", names[0], got[names[0]], names[store.MaxDailySeries-1], got[names[store.MaxDailySeries-1]])
	}
	for _, name := range names[store.MaxDailySeries:] {
		if got[name][0] != 0 {
			t.Errorf("series %s past the bound counted as itself: %v", name, got[name])
		}
	}
	if got[store.SeriesOther][0] != 3 {
		t.Errorf("%s = %v, want the 3 past the bound", store.SeriesOther, got[store.SeriesOther])
	}
	// Another day has a bound of its own.
	if err := s.AddDaily(ctx, []store.DailyDelta{{Day: day(1), Series: names[store.MaxDailySeries], N: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := daily(t, s, 1, 1, names[store.MaxDailySeries]); got[names[store.MaxDailySeries]][0] != 1 {
		t.Errorf("the next day: %v, want 1", got)
	}
}

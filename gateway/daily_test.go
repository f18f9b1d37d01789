package gateway

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// dailyOutage refuses per-day batches while down, and counts them.
type dailyOutage struct {
	store.Store
	down  bool
	tries int
}

func (o *dailyOutage) AddDaily(ctx context.Context, d []store.DailyDelta) error {
	o.tries++
	if o.down {
		return store.ErrUnavailable
	}
	return o.Store.AddDaily(ctx, d)
}

// TestDailyCounts: new activations and gate decisions are counted per
// UTC day of the service's clock and reach the store in batches:
// activations on three days read back as three heights, with a zero for
// the day between; a re-activation is no new activation; a batch the
// store refuses is written by the next flush, and nothing twice.
func TestDailyCounts(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			out := &dailyOutage{Store: f.store}
			f.svc.cfg.Store = out
			ctx := context.Background()
			first := store.Day(f.clock.Now())
			g := f.svc.Gate(nil)

			a := f.activate("KEY-1", "one.example")
			f.activate("KEY-2", "two.example")
			for range 2 {
				if _, err := g.Admit(ctx, a.AccessToken, 0); err != nil {
					t.Fatal(err)
				}
			}
			_, err := g.Admit(ctx, "not-a-token", 0)
			wantCode(t, err, CodeInvalidToken)
			g.Refused(CodeInvalidToken) // no Bearer credential at all

			f.clock.Advance(24 * time.Hour)
			f.activate("KEY-3", "three.example")
			f.activate("KEY-3", "three.example") // the same installation again: no new one
			out.down = true
			if err := f.svc.FlushDaily(ctx); err == nil {
				t.Fatal("a flush during an outage succeeded")
			}
			out.down = false

			f.clock.Advance(48 * time.Hour) // the slot of the first day after next
			for _, k := range []string{"KEY-4", "KEY-5", "KEY-6"} {
				f.activate(k, k+".example")
			}
			if err := f.svc.FlushDaily(ctx); err != nil {
				t.Fatal(err)
			}
			series := []string{SeriesActivations, GateSeries(OutcomeAdmitted), GateSeries(CodeInvalidToken), GateSeries(CodeQuotaExceeded)}
			want := map[string][]int64{
				SeriesActivations:             {2, 1, 0, 3},
				GateSeries(OutcomeAdmitted):   {2, 0, 0, 0},
				GateSeries(CodeInvalidToken):  {2, 0, 0, 0},
				GateSeries(CodeQuotaExceeded): {0, 0, 0, 0},
			}
			read := func() map[string][]int64 {
				t.Helper()
				got, err := f.store.Daily(ctx, series, first, first.AddDate(0, 0, 3))
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := read(); !reflect.DeepEqual(got, want) {
				t.Fatalf("per-day counts %v, want %v", got, want)
			}
			from, all, err := f.svc.DailyCounts(ctx, 4)
			if err != nil || !from.Equal(first) || len(all) != len(DailySeries()) || !reflect.DeepEqual(all[SeriesActivations], want[SeriesActivations]) {
				t.Fatalf("DailyCounts(4) = %v, %v, %v; want from %v, every series, activations %v", from, all, err, first, want[SeriesActivations])
			}
			if _, _, err := f.svc.DailyCounts(ctx, store.MaxDailyDays+1); err == nil {
				t.Error("DailyCounts past the store's bound answered")
			}
			tries := out.tries
			if err := f.svc.FlushDaily(ctx); err != nil || out.tries != tries {
				t.Fatalf("an idle flush reached the store (%v)", err)
			}
			if got := read(); !reflect.DeepEqual(got, want) {
				t.Fatalf("after another flush: %v, want %v", got, want)
			}
		})
	}
}

// TestDailyCountsFoldUnknownCodes: a code the gate does not give counts
// under gate:other; every series the service writes is one the store
// takes.
func TestDailyCountsFoldUnknownCodes(t *testing.T) {
	var c dailyCounts
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c.gate(now, "made_up_code")
	c.gate(now, OutcomeAdmitted)
	got := c.take(now)
	want := map[string]int64{GateSeries("other"): 1, GateSeries(OutcomeAdmitted): 1}
	if len(got) != len(want) {
		t.Fatalf("deltas %+v, want %v", got, want)
	}
	for _, d := range got {
		if want[d.Series] != d.N || !d.Day.Equal(store.Day(now)) {
			t.Errorf("delta %+v, want %v on %s", d, want, store.DayKey(now))
		}
	}
	for _, s := range DailySeries() {
		if !store.ValidSeries(s) {
			t.Errorf("series %q is not one the store takes", s)
		}
	}
	// A batch past the store's retention is dropped, not sent for ever.
	c.gate(now, OutcomeAdmitted)
	if got := c.take(now.Add(store.DailyRetention + 48*time.Hour)); len(got) != 0 {
		t.Errorf("counts past the retention still sent: %+v", got)
	}
}

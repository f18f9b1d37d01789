package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Counters are the small, bounded tallies the author console draws
// (SPEC section 13) without scanning licences: named series counted per
// UTC day (activations, gate decisions by code), and per product the
// active installations on each version (versions.go).
type Counters interface {
	// AddDaily adds each delta to its series' count for its day, in one
	// batch: what every instance added is summed. A day's counters go
	// DailyRetention after the day was last written. A series name that
	// is not ValidSeries, or a negative N, fails the whole batch; past
	// MaxDailySeries distinct series in one day, further ones count under
	// SeriesOther.
	AddDaily(ctx context.Context, deltas []DailyDelta) error
	// Daily returns, for each series asked, one count per day from from
	// to to (UTC days, both included), zero where nothing was counted.
	// At most MaxDailyDays days may be asked for.
	Daily(ctx context.Context, series []string, from, to time.Time) (map[string][]int64, error)
	// Versions returns a product's active installations by the version
	// they last reported (versions.go): the versions counting one or
	// more, VersionOther for those folded past MaxVersions. None is an
	// empty map.
	Versions(ctx context.Context, product string) (map[string]int64, error)
}

// DailyDelta is what to add to one series' count of one day.
type DailyDelta struct {
	// Day is the UTC day counted (any instant of it: backends use Day's
	// UTC date).
	Day time.Time
	// Series names what is counted: "activations", "gate:<code>", ...
	// (ValidSeries).
	Series string
	N      int64
}

// Bounds of the per-day counters: a day's counters go DailyRetention
// after its last write, each day holds at most MaxDailySeries series
// (and SeriesOther), and a read spans at most MaxDailyDays.
const (
	DailyRetention = 35 * 24 * time.Hour
	MaxDailySeries = 64
	MaxDailyDays   = 62
	// SeriesOther counts what the series of a day past MaxDailySeries
	// would have.
	SeriesOther = "other"
	// maxSeriesLen bounds a series name.
	maxSeriesLen = 48
)

// ValidSeries reports whether name may name a series: 1 to 48 of
// [a-z0-9_.:-]. The names are the gateway's own fixed set, never a
// client's input; this keeps a bug from writing keys of any shape.
func ValidSeries(name string) bool {
	if name == "" || len(name) > maxSeriesLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// DayKey is a day's name in keys: its UTC date, 2006-01-02.
func DayKey(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Day is the start of t's UTC day.
func Day(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// ErrBadCounter is what AddDaily and Daily return for a request no
// backend should act on (a caller's bug), wrapped with the detail.
var ErrBadCounter = errors.New("bad counter request")

// CheckDaily checks a batch before a backend writes any of it.
func CheckDaily(deltas []DailyDelta) error {
	for _, d := range deltas {
		if !ValidSeries(d.Series) {
			return fmt.Errorf("%w: series %q is not 1 to %d of [a-z0-9_.:-]", ErrBadCounter, d.Series, maxSeriesLen)
		}
		if d.N < 0 {
			return fmt.Errorf("%w: series %q: a count only grows (n %d)", ErrBadCounter, d.Series, d.N)
		}
	}
	return nil
}

// DailyDays checks a read's series and span and returns its days, from
// first.
func DailyDays(series []string, from, to time.Time) ([]time.Time, error) {
	for _, s := range series {
		if !ValidSeries(s) {
			return nil, fmt.Errorf("%w: series %q is not 1 to %d of [a-z0-9_.:-]", ErrBadCounter, s, maxSeriesLen)
		}
	}
	first, last := Day(from), Day(to)
	if last.Before(first) {
		return nil, fmt.Errorf("%w: from %s is after to %s", ErrBadCounter, DayKey(from), DayKey(to))
	}
	n := int(last.Sub(first)/(24*time.Hour)) + 1
	if n > MaxDailyDays {
		return nil, fmt.Errorf("%w: %d days asked for, at most %d", ErrBadCounter, n, MaxDailyDays)
	}
	days := make([]time.Time, n)
	for i := range days {
		days[i] = first.Add(time.Duration(i) * 24 * time.Hour)
	}
	return days, nil
}

// DailyRead checks a read as DailyDays does and returns its days and the
// answer to fill: every series with a zero for each day.
func DailyRead(series []string, from, to time.Time) ([]time.Time, map[string][]int64, error) {
	days, err := DailyDays(series, from, to)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string][]int64, len(series))
	for _, name := range series {
		out[name] = make([]int64, len(days))
	}
	return days, out, nil
}

// DailyByDay groups a batch by day, summing repeats, in first-seen
// order: what one write per day adds. Zero deltas are left out.
func DailyByDay(deltas []DailyDelta) (days []string, by map[string]map[string]int64) {
	by = map[string]map[string]int64{}
	for _, d := range deltas {
		if d.N == 0 {
			continue
		}
		k := DayKey(d.Day)
		m, ok := by[k]
		if !ok {
			m = map[string]int64{}
			by[k] = m
			days = append(days, k)
		}
		m[d.Series] += d.N
	}
	return days, by
}

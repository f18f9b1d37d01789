package redis

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// dailyKey is one UTC day's counters: a hash series -> count, expiring
// store.DailyRetention after its last write. The day is the date
// (2006-01-02), so the keys alive are about as many as the days kept.
func (s *Store) dailyKey(day string) string { return s.prefix + "daily:" + day }

// dailyScript adds to one day's counters, folding a series new to a day
// that holds its bound already into the catch-all, so the hash cannot
// grow past it, and keeps the day for the retention from now.
//
// KEYS[1]: the day's hash. ARGV[1]: retention in seconds, ARGV[2]: the
// bound on a day's fields, ARGV[3]: the catch-all series; then series
// and count pairs. Returns 0.
var dailyScript = redis.NewScript(`
local max = tonumber(ARGV[2])
for i = 4, #ARGV, 2 do
  local f = ARGV[i]
  if f ~= ARGV[3] and redis.call('HEXISTS', KEYS[1], f) == 0 and redis.call('HLEN', KEYS[1]) >= max then
    f = ARGV[3]
  end
  redis.call('HINCRBY', KEYS[1], f, ARGV[i+1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
`)

// AddDaily implements store.Counters: one script per day of the batch
// (usually one), all in one pipeline: one round trip. Each day's script
// is atomic; the batch is not, which a counter does not need.
func (s *Store) AddDaily(ctx context.Context, deltas []store.DailyDelta) error {
	if err := store.CheckDaily(deltas); err != nil {
		return err
	}
	days, by := store.DailyByDay(deltas)
	if len(days) == 0 {
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	retention := strconv.FormatInt(int64(store.DailyRetention/time.Second), 10)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, day := range days {
			args := []any{retention, store.MaxDailySeries, store.SeriesOther}
			for _, series := range slices.Sorted(maps.Keys(by[day])) {
				args = append(args, series, by[day][series])
			}
			dailyScript.Eval(ctx, p, []string{s.dailyKey(day)}, args...)
		}
		return nil
	})
	if err != nil {
		return failed(ctx, "counting per day", err)
	}
	return nil
}

// Daily implements store.Counters: one HMGET per day, in one pipeline.
func (s *Store) Daily(ctx context.Context, series []string, from, to time.Time) (map[string][]int64, error) {
	days, out, err := store.DailyRead(series, from, to)
	if err != nil {
		return nil, err
	}
	if len(series) == 0 {
		return out, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cmds := make([]*redis.SliceCmd, len(days))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, day := range days {
			cmds[i] = p.HMGet(ctx, s.dailyKey(store.DayKey(day)), series...)
		}
		return nil
	})
	if err != nil {
		return nil, failed(ctx, "reading per-day counts", err)
	}
	for i, c := range cmds {
		for j, v := range c.Val() {
			if str, ok := v.(string); ok {
				out[series[j]][i], _ = strconv.ParseInt(str, 10, 64)
			}
		}
	}
	return out, nil
}

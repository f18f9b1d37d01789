package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// Per-day counters: bucketDaily holds "<day>|<series>" -> big-endian
// uint64 count (day as 2006-01-02, so a day's series are one prefix), and
// bucketDailyDays each day's last write, unix ns, by day: every AddDaily
// drops the days last written over store.DailyRetention ago (by the
// store's clock), as Redis expires them, so both stay about as small as
// the days kept: a few dozen entries.
var (
	bucketDaily     = []byte("daily")
	bucketDailyDays = []byte("daily_days")
)

func dailyKey(day, series string) []byte { return []byte(day + "|" + series) }

// AddDaily implements store.Counters: the batch in one bbolt update.
func (s *Store) AddDaily(ctx context.Context, deltas []store.DailyDelta) error {
	if err := store.CheckDaily(deltas); err != nil {
		return err
	}
	days, by := store.DailyByDay(deltas)
	if len(days) == 0 {
		return nil
	}
	now := s.now()
	return s.update(ctx, "counting per day", func(tx *bolt.Tx) error {
		if err := pruneDays(tx, now.Add(-store.DailyRetention)); err != nil {
			return err
		}
		for _, day := range days {
			if err := addDay(tx, day, by[day], now); err != nil {
				return err
			}
		}
		return nil
	})
}

// addDay adds counts to one day, folding a series new to a day that
// holds store.MaxDailySeries already into store.SeriesOther, and notes
// the day's write.
func addDay(tx *bolt.Tx, day string, counts map[string]int64, now time.Time) error {
	b := tx.Bucket(bucketDaily)
	prefix := []byte(day + "|")
	fields := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		fields++
	}
	for _, series := range slices.Sorted(maps.Keys(counts)) {
		key := dailyKey(day, series)
		v := b.Get(key)
		if v == nil && series != store.SeriesOther && fields >= store.MaxDailySeries {
			key = dailyKey(day, store.SeriesOther)
			v = b.Get(key)
		}
		if v == nil {
			fields++
		}
		n := counterValue(v) + uint64(counts[series])
		if err := b.Put(key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketDailyDays).Put([]byte(day), binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())))
}

// pruneDays deletes the days last written before cutoff.
func pruneDays(tx *bolt.Tx, cutoff time.Time) error {
	days := tx.Bucket(bucketDailyDays)
	var stale [][]byte
	err := days.ForEach(func(k, v []byte) error {
		if len(v) != 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketDaily)
	for _, day := range stale {
		prefix := append(bytes.Clone(day), '|')
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if err := days.Delete(day); err != nil {
			return err
		}
	}
	return nil
}

func counterValue(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Daily implements store.Counters.
func (s *Store) Daily(ctx context.Context, series []string, from, to time.Time) (map[string][]int64, error) {
	days, out, err := store.DailyRead(series, from, to)
	if err != nil {
		return nil, err
	}
	err = s.view(ctx, "reading per-day counts", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaily)
		for i, day := range days {
			key := store.DayKey(day)
			for _, name := range series {
				out[name][i] = int64(counterValue(b.Get(dailyKey(key, name))))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

package redis

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// statusKey is the status counts (store.StatusCounter): a hash, count
// name ("license:<status>", "installation:<status>", "locked") -> count,
// a few dozen fields at most. With a plain client a licence's write
// adjusts it in its MULTI/EXEC, so the counts are exact; on Cluster it
// is in another slot and adjusted right after EXEC, as the version
// counts: a failure between the two loses that write's adjustment (the
// write reports ErrUnavailable), and two writes' adjustments may arrive
// out of order, so a count may be below zero for a moment (HINCRBY sums
// add up whatever the order; StatusCounts reports none below zero).
func (s *Store) statusKey() string { return s.prefix + "status" }

// statusWrites settles the status counts of writing next over a state
// counted as before (store.CountStatuses), marking next counted, and
// returns the write of the counts (none when nothing changes).
func (s *Store) statusWrites(ctx context.Context, before store.StatusShare, next *store.LicenseState) []indexWrite {
	deltas := store.CountStatuses(before, next)
	if len(deltas) == 0 {
		return nil
	}
	k := s.statusKey()
	return []indexWrite{{k, func(p redis.Pipeliner) {
		for _, d := range deltas {
			p.HIncrBy(ctx, k, d.Name, d.N)
		}
	}}}
}

// StatusCounts implements store.StatusCounter: one HGETALL of a small
// hash.
func (s *Store) StatusCounts(ctx context.Context) (licenses, installations map[string]int64, locked int64, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	vals, err := s.client.HGetAll(ctx, s.statusKey()).Result()
	if err != nil {
		return nil, nil, 0, failed(ctx, "reading status counts", err)
	}
	kept := make(map[string]int64, len(vals))
	for name, raw := range vals {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			kept[name] = n
		}
	}
	licenses, installations, locked = store.SplitStatusCounts(kept)
	return licenses, installations, locked, nil
}

// Interface guards
var _ store.StatusCounter = (*Store)(nil)

package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// quotaKey is an installation's counter for one window, under its
// licence's hash tag.
func (s *Store) quotaKey(d store.QuotaDelta) string {
	return s.prefix + "{" + d.LicenseID + "}:quota:" + d.InstallationID + ":" + strconv.FormatInt(d.Window.Unix(), 10)
}

// AddQuota implements store.Store: INCRBY and PEXPIREAT (a minute
// after the window ends) per delta, the batch in one pipeline: one round
// trip.
func (s *Store) AddQuota(ctx context.Context, deltas []store.QuotaDelta) ([]int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cmds := make([]*redis.IntCmd, len(deltas))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range deltas {
			key := s.quotaKey(d)
			cmds[i] = p.IncrBy(ctx, key, d.N)
			p.PExpireAt(ctx, key, d.Window.Add(d.Period+time.Minute))
		}
		return nil
	})
	if err != nil {
		return nil, failed(ctx, "counting quota", err)
	}
	totals := make([]int64, len(deltas))
	for i, c := range cmds {
		totals[i] = c.Val()
	}
	return totals, nil
}

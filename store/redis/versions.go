package redis

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// versionsKey is a product's version counts: a hash version -> active
// installations on it (store.CountVersions), at most store.MaxVersions
// fields and store.VersionOther's.
func (s *Store) versionsKey(product string) string { return s.prefix + "versions:" + product }

// versionsScript applies deltas to a product's version counts, dropping
// a version whose count reaches zero, so the hash holds only versions in
// use and makes room for new ones. A count below zero is kept: on
// Cluster two writes' adjustments are applied after their transactions
// and may arrive out of order (an installation's -1 before the +1 that
// preceded it), and sums that are kept add up whatever the order; Versions
// lists only positive counts.
//
// KEYS[1]: the product's counts; ARGV: version and delta pairs. Returns 0.
var versionsScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1]) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
`)

// versionWrites settles the version counts of a write of next over old
// (the installations stored), setting next's VersionCountedAs, and
// returns the writes of the counts. stateKey is the licence's, watched by
// tx. Where a product's counts share its slot (always with a plain
// client), tx watches them before reading them, so a rival's change
// before EXEC runs the write again and the bound holds exactly; on
// Cluster they are read outside the transaction, and rival writes racing
// to add a version may pass the bound by one each.
func (s *Store) versionWrites(ctx context.Context, tx *redis.Tx, stateKey string, old, next []store.Installation) ([]indexWrite, error) {
	deltas, err := store.CountVersions(old, next, func(product string) (map[string]bool, error) {
		k := s.versionsKey(product)
		var c redis.Cmdable = s.client
		if s.sameSlot(stateKey, k) {
			if err := tx.Watch(ctx, k).Err(); err != nil {
				return nil, err
			}
			c = tx
		}
		fields, err := c.HKeys(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		table := make(map[string]bool, len(fields))
		for _, f := range fields {
			table[f] = true
		}
		return table, nil
	})
	if err != nil {
		return nil, err
	}
	order, by := store.VersionsByProduct(deltas)
	writes := make([]indexWrite, 0, len(order))
	for _, product := range order {
		k := s.versionsKey(product)
		args := make([]any, 0, 2*len(by[product]))
		for _, d := range by[product] {
			args = append(args, d.Version, d.N)
		}
		writes = append(writes, indexWrite{k, func(p redis.Pipeliner) { versionsScript.Eval(ctx, p, []string{k}, args...) }})
	}
	return writes, nil
}

// Versions implements store.Counters.
func (s *Store) Versions(ctx context.Context, product string) (map[string]int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	vals, err := s.client.HGetAll(ctx, s.versionsKey(product)).Result()
	if err != nil {
		return nil, failed(ctx, "reading version counts", err)
	}
	out := make(map[string]int64, len(vals))
	for v, raw := range vals {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil && n > 0 {
			out[v] = n
		}
	}
	return out, nil
}

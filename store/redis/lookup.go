package redis

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// lookupKey is a lookup term's index: a sorted set of licence ids, all of
// score 0, so ZRANGE lists them in id order and reads at most the bound.
func (s *Store) lookupKey(term string) string { return s.prefix + "term:" + term }

// asksKey is the queue of checks asked for now: licence id -> the latest
// ask, unix µs (exact in a score).
func (s *Store) asksKey() string { return s.prefix + "{asks}" }

// indexWrite is a write of an index key beside a licence's own.
type indexWrite struct {
	key   string
	write func(redis.Pipeliner)
}

// termWrites are the index writes that move a licence from the terms it
// was indexed by to those it is to be. Every term it is to have is added
// again, not only the new ones: on Cluster a term's key is written after
// the licence's own transaction, and a write lost there (a crash between
// the two) is repaired by the licence's next write. ZADD of a member
// already there changes nothing.
func (s *Store) termWrites(ctx context.Context, licenseID string, old, next []string) []indexWrite {
	gone, _ := store.TermChanges(old, next)
	var out []indexWrite
	for _, t := range gone {
		k := s.lookupKey(t)
		out = append(out, indexWrite{k, func(p redis.Pipeliner) { p.ZRem(ctx, k, licenseID) }})
	}
	for _, t := range next {
		k := s.lookupKey(t)
		out = append(out, indexWrite{k, func(p redis.Pipeliner) { p.ZAdd(ctx, k, redis.Z{Member: licenseID}) }})
	}
	return out
}

// Lookup implements store.Finder.
func (s *Store) Lookup(ctx context.Context, term string) ([]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ids, err := s.client.ZRange(ctx, s.lookupKey(term), 0, store.MaxLookup-1).Result()
	if err != nil {
		return nil, failed(ctx, "looking up licences", err)
	}
	return ids, nil
}

// LookupAfter implements store.TermPager: the term's set holds every
// member at score 0, so ZRANGEBYLEX from the exclusive cursor reads the
// page and nothing before it.
func (s *Store) LookupAfter(ctx context.Context, term, after string, limit int) ([]string, error) {
	limit = store.PageLimit(limit)
	if limit == 0 {
		return []string{}, nil // go-redis reads Count 0 as "no limit"
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	from := "-"
	if after != "" {
		from = "(" + after
	}
	ids, err := s.client.ZRangeByLex(ctx, s.lookupKey(term), &redis.ZRangeBy{Min: from, Max: "+", Count: int64(limit)}).Result()
	if err != nil {
		return nil, failed(ctx, "paging licences by term", err)
	}
	return ids, nil
}

// CountTerm implements store.TermPager: ZCARD, O(1).
func (s *Store) CountTerm(ctx context.Context, term string) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	n, err := s.client.ZCard(ctx, s.lookupKey(term)).Result()
	if err != nil {
		return 0, failed(ctx, "counting licences by term", err)
	}
	return n, nil
}

// AskCheck implements store.Scheduler: ZADD GT keeps the later of two
// asks, and the notice goes out in the same round trip.
func (s *Store) AskCheck(ctx context.Context, licenseID string, at time.Time) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	notice, _ := json.Marshal(store.Change{LicenseID: licenseID, Asked: true})
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddArgs(ctx, s.asksKey(), redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(at.UnixMicro()), Member: licenseID}}})
		p.Publish(ctx, s.channel(), notice)
		return nil
	})
	if err != nil {
		return failed(ctx, "queueing a check", err)
	}
	return nil
}

// Asked implements store.Scheduler.
func (s *Store) Asked(ctx context.Context, limit int) ([]store.Ask, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	zs, err := s.client.ZRangeWithScores(ctx, s.asksKey(), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, failed(ctx, "reading queued checks", err)
	}
	asks := make([]store.Ask, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		asks = append(asks, store.Ask{LicenseID: id, At: time.UnixMicro(int64(z.Score))})
	}
	return asks, nil
}

// doneAskScript removes an ask unless a later one replaced it.
// KEYS[1]: the queue; ARGV[1]: licence id, ARGV[2]: the ask served, unix µs.
var doneAskScript = redis.NewScript(`
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`)

// DoneAsk implements store.Scheduler.
func (s *Store) DoneAsk(ctx context.Context, licenseID string, at time.Time) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := doneAskScript.Run(ctx, s.client, []string{s.asksKey()}, licenseID, strconv.FormatInt(at.UnixMicro(), 10)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return failed(ctx, "dequeueing a check", err)
	}
	return nil
}

// Interface guards
var _ store.TermPager = (*Store)(nil)

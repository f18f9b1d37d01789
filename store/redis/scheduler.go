package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// claimScript claims due licences on the due index alone (one key, so
// Cluster runs it in one slot): the earliest entries not after the given
// score move to the claim's end.
//
// KEYS[1]: the due index (zset). ARGV[1]: the highest due score (unix ms),
// ARGV[2]: the limit, ARGV[3]: the claimed entries' new score.
// Returns the claimed licence ids, earliest first.
//
// The licence records keep their NextCheckAt: the worker that claimed one
// writes the real next time with its result, and that write re-indexes the
// entry (dueScript). Another write of the licence in between (an
// activation) re-asserts the record's own time, making the licence due
// again early; the worker's fenced write and the claim's own short life
// make that a repeated check at worst, never a lost one.
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
end
return ids
`)

// dueMax is the highest index score due at now: rounded down, since
// entries are rounded up (dueScore).
func dueMax(now time.Time) string {
	ms := now.UnixMilli()
	if time.UnixMilli(ms).After(now) {
		ms--
	}
	return strconv.FormatInt(ms, 10)
}

// ClaimDue implements store.Scheduler with claimScript: O(log n) per
// licence claimed.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, claimFor time.Duration) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ids, err := claimScript.Run(ctx, s.client, []string{s.dueKey()}, dueMax(now), limit, dueScore(now.Add(claimFor))).StringSlice()
	if err != nil {
		return nil, failed(ctx, "claiming due licences", err)
	}
	return ids, nil
}

// NextDue implements store.Scheduler: the sorted set's first entry.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	z, err := s.client.ZRangeWithScores(ctx, s.dueKey(), 0, 0).Result()
	if err != nil {
		return time.Time{}, failed(ctx, "reading the next due licence", err)
	}
	if len(z) == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(z[0].Score)).UTC(), nil
}

// DueStats implements store.Scheduler: ZCARD, ZCOUNT and the first entry,
// each O(log n).
func (s *Store) DueStats(ctx context.Context, now time.Time) (store.DueStats, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var card, count *redis.IntCmd
	var first *redis.ZSliceCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, s.dueKey())
		count = p.ZCount(ctx, s.dueKey(), "-inf", dueMax(now))
		first = p.ZRangeWithScores(ctx, s.dueKey(), 0, 0)
		return nil
	})
	if err != nil {
		return store.DueStats{}, failed(ctx, "counting due licences", err)
	}
	st := store.DueStats{Scheduled: card.Val(), Due: count.Val()}
	if z := first.Val(); len(z) > 0 {
		st.Oldest = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	return st, nil
}

// acquireScript takes a lease (store.Scheduler.AcquireLease).
//
// KEYS[1]: the lease (hash holder, token, expires). ARGV[1]: holder,
// ARGV[2]: now (unix ms), ARGV[3]: ttl (ms).
// Returns {1, holder, token, expires} when taken or extended, {0, holder,
// token, expires} of the other holder when held.
var acquireScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
local holder = cur[1] or ''
local token = tonumber(cur[2] or '0')
local expires = tonumber(cur[3] or '0')
local now = tonumber(ARGV[2])
local live = holder ~= '' and now < expires
if live and holder ~= ARGV[1] then
  return {0, holder, token, expires}
end
if not live then token = token + 1 end
local exp = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expires', exp)
return {1, ARGV[1], token, exp}
`)

// renewScript extends a held lease.
//
// KEYS[1]: the lease. ARGV[1]: holder, ARGV[2]: token, ARGV[3]: now (unix
// ms), ARGV[4]: ttl (ms). Returns the new expiry, or 0 when the lease is
// not held with that token (lost).
var renewScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
local now = tonumber(ARGV[3])
if cur[1] ~= ARGV[1] or tonumber(cur[2] or '0') ~= tonumber(ARGV[2]) or now >= tonumber(cur[3] or '0') then
  return 0
end
local exp = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires', exp)
return exp
`)

// releaseScript gives up a held lease, keeping its token count.
//
// KEYS[1]: the lease. ARGV[1]: holder, ARGV[2]: token. Returns 1 when
// released, 0 when it was not held so.
var releaseScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] ~= ARGV[1] or tonumber(cur[2] or '0') ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'holder', '', 'expires', 0)
return 1
`)

// AcquireLease implements store.Scheduler with acquireScript.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := acquireScript.Run(ctx, s.client, []string{s.leaseKey(name)}, holder, now.UnixMilli(), ttl.Milliseconds()).Slice()
	if err != nil {
		return store.Lease{}, failed(ctx, "acquiring lease", err)
	}
	if len(res) != 4 {
		return store.Lease{}, unavailable("acquiring lease", fmt.Errorf("unexpected answer %v", res))
	}
	who, _ := res[1].(string)
	token, _ := res[2].(int64)
	exp, _ := res[3].(int64)
	l := store.Lease{Name: name, Holder: who, Token: token, Expires: time.UnixMilli(exp).UTC()}
	if ok, _ := res[0].(int64); ok != 1 {
		return l, fmt.Errorf("acquiring lease %s: %w", name, store.ErrLeaseHeld)
	}
	return l, nil
}

// RenewLease implements store.Scheduler with renewScript.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, now time.Time, ttl time.Duration) (store.Lease, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	exp, err := renewScript.Run(ctx, s.client, []string{s.leaseKey(l.Name)}, l.Holder, l.Token, now.UnixMilli(), ttl.Milliseconds()).Int64()
	if err != nil {
		return store.Lease{}, failed(ctx, "renewing lease", err)
	}
	if exp == 0 {
		return store.Lease{}, fmt.Errorf("renewing lease %s: %w", l.Name, store.ErrLeaseLost)
	}
	l.Expires = time.UnixMilli(exp).UTC()
	return l, nil
}

// ReleaseLease implements store.Scheduler with releaseScript.
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := releaseScript.Run(ctx, s.client, []string{s.leaseKey(l.Name)}, l.Holder, l.Token).Err(); err != nil {
		return failed(ctx, "releasing lease", err)
	}
	return nil
}

// Interface guards
var _ store.Scheduler = (*Store)(nil)

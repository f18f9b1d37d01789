package redis

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// Delivery: a worker claims the head of a shard's queue (outboxClaimScript)
// and settles it (outboxSettleScript). The head stays at the front until it
// is settled, so a licence's events go out one at a time, in order.

// outboxClaimScript claims the head of one shard's queue.
//
// KEYS[1]: the shard's entries (hash), KEYS[2]: its queue (zset),
// KEYS[3] (only when in the same slot): the outbox index. ARGV[1]: now in
// unix ms, ARGV[2]: claim end in unix ms, ARGV[3]: claim token, ARGV[4]:
// the shard.
// Returns {0} when the queue is empty, {1, when} when its head is not due
// (or claimed) until when, {2, seq, entry JSON} when claimed.
var outboxClaimScript = redis.NewScript(`
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if #head == 0 then
  if #KEYS == 3 then redis.call('ZREM', KEYS[3], ARGV[4]) end
  return {0}
end
local seq = head[1]
local now = tonumber(ARGV[1])
local due = tonumber(redis.call('HGET', KEYS[1], 'n:'..seq) or '0')
local untilMs = tonumber(redis.call('HGET', KEYS[1], 'u:'..seq) or '0')
local wait = math.max(due, untilMs)
if wait > now then
  if #KEYS == 3 then redis.call('ZADD', KEYS[3], wait, ARGV[4]) end
  return {1, tostring(wait)}
end
redis.call('HSET', KEYS[1], 'c:'..seq, ARGV[3], 'u:'..seq, ARGV[2])
if #KEYS == 3 then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4]) end
return {2, seq, redis.call('HGET', KEYS[1], seq)}
`)

// outboxSettleScript writes a claimed entry's outcome.
//
// KEYS as outboxClaimScript, and KEYS[4] the pending count, KEYS[5] the
// failed set and KEYS[6] the pending entries (:queued) when KEYS[3] is
// given. ARGV[1]: seq, ARGV[2]: claim
// token, ARGV[3]: entry JSON, ARGV[4]: "pending" or another status,
// ARGV[5]: next attempt in unix ms (pending), ARGV[6]: the shard, ARGV[7]:
// the entry's id, ARGV[8]: when it was done in unix ms (failed).
// Returns {-1, 0} when the claim is not the entry's, else {when the
// queue's head is next due (unix ms) or -2 when the queue is empty, 1 when
// the entry left its queue (the pending count goes down) or 0}.
var outboxSettleScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'c:'..ARGV[1]) ~= ARGV[2] then return {-1, 0} end
redis.call('HDEL', KEYS[1], 'c:'..ARGV[1], 'u:'..ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local left = 0
if ARGV[4] == 'pending' then
  redis.call('HSET', KEYS[1], 'n:'..ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[1], 'n:'..ARGV[1])
  left = redis.call('ZREM', KEYS[2], ARGV[1])
  if left == 1 and #KEYS >= 4 then redis.call('DECR', KEYS[4]) end
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
local score = -2
if #head > 0 then score = tonumber(redis.call('HGET', KEYS[1], 'n:'..head[1]) or '0') end
if #KEYS >= 3 then
  if score == -2 then redis.call('ZREM', KEYS[3], ARGV[6]) else redis.call('ZADD', KEYS[3], score, ARGV[6]) end
end
if #KEYS >= 5 then
  if ARGV[4] == 'failed' then redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
  elseif ARGV[4] == 'delivered' then redis.call('ZREM', KEYS[5], ARGV[7]) end
end
if #KEYS >= 6 and ARGV[4] ~= 'pending' then redis.call('ZREM', KEYS[6], ARGV[7]) end
return {score, left}
`)

// shardKeys are a shard's keys for the claim and settle scripts, with the
// index when one script may hold it.
func (s *Store) shardKeys(shard string) (keys []string, withIndex bool) {
	keys = []string{s.outboxKey(shard), s.outboxQueueKey(shard)}
	if s.sameSlot(keys[0], s.outboxIndexKey()) {
		return append(keys, s.outboxIndexKey()), true
	}
	return keys, false
}

func claimToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// repairInterval is how often, on Cluster, ClaimOutbox re-derives the
// index from the queues themselves.
const repairInterval = 5 * time.Minute

// repairIndex puts every shard with a queue back into the index (ZADD NX,
// due now), for a queue whose index write after EXEC was lost on Cluster
// (there the index is in another slot). It scans each master.
func (s *Store) repairIndex(ctx context.Context) error {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return nil // the index is written in the change's transaction
	}
	pattern := s.prefix + "{*}:obq"
	return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			open, end := strings.IndexByte(key, '{'), strings.LastIndexByte(key, '}')
			if open < 0 || end <= open {
				continue
			}
			if err := s.client.ZAddNX(ctx, s.outboxIndexKey(), redis.Z{Score: 0, Member: key[open+1 : end]}).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	})
}

// ClaimOutbox implements store.Outbox: it polls the index for shards due
// at now and claims each one's queue head. On Cluster it also re-derives
// the index from the queues every repairInterval.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	s.mu.Lock()
	repair := time.Since(s.repaired) >= repairInterval
	if repair {
		s.repaired = time.Now()
	}
	s.mu.Unlock()
	if repair {
		if err := s.repairIndex(ctx); err != nil {
			return nil, failed(ctx, "claiming outbox entries: re-deriving the index", err)
		}
	}
	shards, err := s.client.ZRangeByScore(ctx, s.outboxIndexKey(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, failed(ctx, "claiming outbox entries", err)
	}
	var out []store.OutboxEntry
	for _, shard := range shards {
		keys, withIndex := s.shardKeys(shard)
		token := claimToken()
		res, err := outboxClaimScript.Run(ctx, s.client, keys, now.UnixMilli(), now.Add(lease).UnixMilli(), token, shard).Slice()
		if err != nil {
			return nil, failed(ctx, "claiming outbox entries", err)
		}
		kind, _ := res[0].(int64)
		switch kind {
		case 0, 1:
			if !withIndex {
				if kind == 0 {
					err = s.client.ZRem(ctx, s.outboxIndexKey(), shard).Err()
				} else {
					when, _ := strconv.ParseFloat(fmt.Sprint(res[1]), 64)
					err = s.client.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: when, Member: shard}).Err()
				}
				if err != nil {
					return nil, failed(ctx, "claiming outbox entries", err)
				}
			}
			continue
		}
		raw, _ := res[2].(string)
		var e store.OutboxEntry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, unavailable("claiming outbox entries", fmt.Errorf("entry %s:%v: %w", shard, res[1], err))
		}
		e.Claim, e.ClaimedUntil = token, now.Add(lease)
		if !withIndex {
			if err := s.client.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: float64(now.Add(lease).UnixMilli()), Member: shard}).Err(); err != nil {
				return nil, failed(ctx, "claiming outbox entries", err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// SettleOutbox implements store.Outbox.
func (s *Store) SettleOutbox(ctx context.Context, e store.OutboxEntry) error {
	shard, seq, ok := splitEntryID(e.ID)
	if !ok {
		return store.ErrNotClaimed
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	token := e.Claim
	e.Claim, e.ClaimedUntil = "", time.Time{}
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding outbox entry: %w", err)
	}
	keys, withIndex := s.shardKeys(shard)
	if withIndex {
		// One node holds them all: the index, the pending count, the
		// failed set and the pending entries change in the script, with
		// the entry.
		keys = append(keys, s.outboxPendingKey(), s.outboxFailedKey(), s.outboxQueuedKey())
	}
	res, err := outboxSettleScript.Run(ctx, s.client, keys, seq, token, raw, e.Status, e.NextAttemptAt.UnixMilli(), shard,
		e.ID, e.DoneAt.UnixMilli()).Int64Slice()
	if err != nil {
		return failed(ctx, "settling outbox entry", err)
	}
	if len(res) != 2 {
		return unavailable("settling outbox entry", fmt.Errorf("settle script returned %v", res))
	}
	score, left := res[0], res[1] == 1
	if score == -1 {
		return store.ErrNotClaimed
	}
	if withIndex {
		return nil
	}
	// Cluster: the {outbox} keys are in another slot, written right after
	// (a lost index write is repaired by repairIndex).
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if score == -2 {
			p.ZRem(ctx, s.outboxIndexKey(), shard)
		} else {
			p.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: float64(score), Member: shard})
		}
		if left {
			p.Decr(ctx, s.outboxPendingKey())
		}
		if e.Status != store.OutboxPending {
			p.ZRem(ctx, s.outboxQueuedKey(), e.ID)
		}
		switch e.Status {
		case store.OutboxFailed:
			p.ZAdd(ctx, s.outboxFailedKey(), redis.Z{Score: float64(e.DoneAt.UnixMilli()), Member: e.ID})
		case store.OutboxDelivered:
			p.ZRem(ctx, s.outboxFailedKey(), e.ID)
		}
		return nil
	})
	if err != nil {
		return failed(ctx, "settling outbox entry", err)
	}
	return nil
}

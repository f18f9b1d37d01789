package redis

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// The outbox. Each licence's entries live under the licence's hash tag, so
// UpdateLicense writes them in the MULTI/EXEC of the change itself:
//
//	P{<licence>}:ob    hash  seq -> JSON OutboxEntry; "seq": the last seq
//	                         given; n:<seq> next attempt (unix ms, absent =
//	                         due); c:<seq> claim token, u:<seq> claim end
//	P{<licence>}:obq   zset  pending seqs scored by seq: the licence's queue
//	P{~events}:ob/obq        the same for events of no licence
//	P{outbox}          zset  shard (licence id or ~events) -> when its queue
//	                         head is next due (unix ms): what workers poll
//	P{outbox}:log      zset  every entry id scored by creation (unix ms)
//	P{outbox}:failed   zset  failed entry ids scored by failure time
//	P{outbox}:pending  string how many entries are pending (queued in
//	                         some :obq): OutboxPending's O(1) count
//
// An entry's id is "<shard>:<seq>". With a plain client everything above is
// written in the change's transaction, and the claim and settle scripts keep
// P{outbox} in step atomically. On Cluster P{outbox} and its log are in
// another slot: they are written right after EXEC, like the due index (see
// the package doc); the entry itself is committed with the change, so an
// event is never lost, only found late if that write fails: ClaimOutbox
// re-derives the index from the queues (SCAN on each master) every
// repairInterval. The audit stream is in another slot too: on Cluster its
// entry is written after EXEC, and lost if that write fails (the outbox
// entry, and so the webhook, is not).
//
// The pending count is kept where the queues change: INCRBY with the
// index write when entries are queued, DECR in the settle script when it
// takes an entry off its queue (ZREM said it was there), INCR in the
// retry's MULTI/EXEC when it queues a failed entry again. With a plain
// client all three are atomic with the queue change, so the count is
// exact. On Cluster the counter is in P{outbox}'s slot, so each is the
// write right after the queue change, and a failed one leaves the count
// off by that change for good (the operation reports ErrUnavailable): low
// when an append's or a retry's index write failed, high when a settle's
// did. OutboxPending never reports below zero. A keyspace written before
// the counter existed starts it at 0, low by the entries then pending.

// globalShard holds the events of no licence.
const globalShard = "~events"

func (s *Store) outboxKey(shard string) string      { return s.prefix + "{" + shard + "}:ob" }
func (s *Store) outboxQueueKey(shard string) string { return s.prefix + "{" + shard + "}:obq" }
func (s *Store) outboxIndexKey() string             { return s.prefix + "{outbox}" }
func (s *Store) outboxLogKey() string               { return s.prefix + "{outbox}:log" }
func (s *Store) outboxFailedKey() string            { return s.prefix + "{outbox}:failed" }
func (s *Store) outboxPendingKey() string           { return s.prefix + "{outbox}:pending" }

// queueEvents adds the writes of evs (audit entries, outbox entries after
// seq, the index) to p, the transaction of the change, or to deferred for
// the keys another slot holds. It returns the writes' new last seq.
func (s *Store) queueEvents(ctx context.Context, p redis.Pipeliner, deferred *[]func(redis.Pipeliner), shard string, seq int64, evs []store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	ob, obq := s.outboxKey(shard), s.outboxQueueKey(shard)
	var ids []string
	var created []float64
	for _, ev := range evs {
		seq++
		ev.ID = ""
		raw, err := json.Marshal(ev)
		if err != nil {
			return errAbort{fmt.Errorf("encoding event: %w", err)}
		}
		audit := func(p redis.Pipeliner) {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), Values: []any{"event", raw}})
		}
		if s.sameSlot(ob, s.auditKey()) {
			audit(p)
		} else {
			*deferred = append(*deferred, audit)
		}
		id := shard + ":" + strconv.FormatInt(seq, 10)
		e := store.OutboxEntry{ID: id, Event: ev, Status: store.OutboxPending, CreatedAt: ev.At}
		entry, err := json.Marshal(e)
		if err != nil {
			return errAbort{fmt.Errorf("encoding outbox entry: %w", err)}
		}
		f := strconv.FormatInt(seq, 10)
		p.HSet(ctx, ob, f, entry)
		p.ZAdd(ctx, obq, redis.Z{Score: float64(seq), Member: f})
		ids = append(ids, id)
		created = append(created, float64(ev.At.UnixMilli()))
	}
	p.HSet(ctx, ob, "seq", seq)
	index := func(p redis.Pipeliner) {
		p.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: 0, Member: shard})
		for i, id := range ids {
			p.ZAdd(ctx, s.outboxLogKey(), redis.Z{Score: created[i], Member: id})
		}
		p.IncrBy(ctx, s.outboxPendingKey(), int64(len(ids)))
	}
	if s.sameSlot(ob, s.outboxIndexKey()) {
		index(p)
	} else {
		*deferred = append(*deferred, index)
	}
	return nil
}

// outboxSeq reads a shard's last seq (in a transaction watching a key that
// every writer of the shard's entries writes).
func (s *Store) outboxSeq(ctx context.Context, c redis.Cmdable, shard string) (int64, error) {
	n, err := c.HGet(ctx, s.outboxKey(shard), "seq").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// AppendEvents implements store.Outbox: one WATCH/MULTI/EXEC on the
// global shard.
func (s *Store) AppendEvents(ctx context.Context, evs []store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	unlock, err := s.lock(ctx, "outbox:"+globalShard)
	if err != nil {
		return lockFailed(ctx, "appending events", err)
	}
	defer unlock()
	key := s.outboxKey(globalShard)
	var later []func(redis.Pipeliner)
	err = s.transact(ctx, "appending events", key, func(tx *redis.Tx) error {
		later = nil
		seq, err := s.outboxSeq(ctx, tx, globalShard)
		if err != nil {
			return err
		}
		var qerr error
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			qerr = s.queueEvents(ctx, p, &later, globalShard, seq, evs)
			return qerr
		})
		if qerr != nil {
			return qerr
		}
		return err
	})
	if err != nil {
		return err
	}
	return s.writeLater(ctx, "appending events", later)
}

// writeLater writes, after a commit, what another slot holds.
func (s *Store) writeLater(ctx context.Context, op string, later []func(redis.Pipeliner)) error {
	if len(later) == 0 {
		return nil
	}
	ictx, cancel := s.withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := s.client.Pipelined(ictx, func(p redis.Pipeliner) error {
		for _, w := range later {
			w(p)
		}
		return nil
	}); err != nil {
		return unavailable(op+": committed, but writing its indexes", err)
	}
	return nil
}

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
// KEYS as outboxClaimScript, and KEYS[4] the pending count and KEYS[5]
// the failed set when KEYS[3] is given. ARGV[1]: seq, ARGV[2]: claim
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
if #KEYS == 5 then
  if ARGV[4] == 'failed' then redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
  elseif ARGV[4] == 'delivered' then redis.call('ZREM', KEYS[5], ARGV[7]) end
end
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

// splitEntryID splits "<shard>:<seq>".
func splitEntryID(id string) (shard, seq string, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 || i == len(id)-1 {
		return "", "", false
	}
	if _, err := strconv.ParseInt(id[i+1:], 10, 64); err != nil {
		return "", "", false
	}
	return id[:i], id[i+1:], true
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
		// One node holds them all: the index, the pending count and the
		// failed set change in the script, with the entry.
		keys = append(keys, s.outboxPendingKey(), s.outboxFailedKey())
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

// readEntries reads entries by id, skipping those gone.
func (s *Store) readEntries(ctx context.Context, ids []string) ([]store.OutboxEntry, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			shard, seq, _ := splitEntryID(id)
			cmds[i] = p.HGet(ctx, s.outboxKey(shard), seq)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]store.OutboxEntry, 0, len(ids))
	for _, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var e store.OutboxEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// outboxCursor is the last entry listed: its score in the log (or the
// failed set), in milliseconds, and its id. Not an offset: entries trimmed
// or retried between two pages would shift every offset after them, and
// the next page would skip as many entries.
var outboxCursor = regexp.MustCompile(`^(-?[0-9]{1,16})~(\S{1,256})$`) // the id may hold ~ (~events)

// OutboxEntries implements store.Outbox: failed entries from their set,
// others from the log, oldest first (by score, then id, as Redis orders
// them); the cursor names the last entry of the page.
func (s *Store) OutboxEntries(ctx context.Context, q store.OutboxQuery) ([]store.OutboxEntry, string, error) {
	var after redis.Z // the cursor's entry; Member nil: none
	if q.After != "" {
		m := outboxCursor.FindStringSubmatch(q.After)
		if m == nil {
			return nil, "", store.ErrBadCursor
		}
		ms, _ := strconv.ParseInt(m[1], 10, 64)
		after = redis.Z{Score: float64(ms), Member: m[2]}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key := s.outboxLogKey()
	if q.Status == store.OutboxFailed {
		key = s.outboxFailedKey()
	}
	min := "-inf"
	if after.Member != nil {
		min = strconv.FormatFloat(after.Score, 'f', -1, 64) // inclusive: ties are sorted by id below
	}
	var out []store.OutboxEntry
	for off := int64(0); len(out) < q.Limit; {
		zs, err := s.client.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: min, Max: "+inf", Offset: off, Count: int64(q.Limit)}).Result()
		if err != nil {
			return nil, "", failed(ctx, "reading outbox", err)
		}
		if len(zs) == 0 {
			return out, "", nil
		}
		off += int64(len(zs))
		ids, scores := idsAfter(zs, after)
		es, err := s.readEntries(ctx, ids)
		if err != nil {
			return nil, "", failed(ctx, "reading outbox", err)
		}
		for _, e := range es {
			if q.Status != "" && e.Status != q.Status {
				continue
			}
			out = append(out, e)
			if len(out) == q.Limit {
				return out, strconv.FormatFloat(scores[e.ID], 'f', 0, 64) + "~" + e.ID, nil
			}
		}
	}
	return out, "", nil
}

// idsAfter returns the members of zs that sort after the cursor's entry
// (a higher score, or the same score and a greater id), and their scores.
func idsAfter(zs []redis.Z, after redis.Z) ([]string, map[string]float64) {
	ids := make([]string, 0, len(zs))
	scores := make(map[string]float64, len(zs))
	cur, _ := after.Member.(string)
	for _, z := range zs {
		id, _ := z.Member.(string)
		if after.Member != nil && z.Score == after.Score && id <= cur {
			continue
		}
		ids = append(ids, id)
		scores[id] = z.Score
	}
	return ids, scores
}

// RetryOutbox implements store.Outbox.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time) error {
	shard, seq, ok := splitEntryID(id)
	if !ok {
		return store.ErrNotFound
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key := s.outboxKey(shard)
	// One node holds the {outbox} keys too (not Cluster): they change in
	// the same MULTI/EXEC as the entry, so no crash between two round
	// trips leaves a pending entry out of the index, never claimed.
	oneSlot := s.sameSlot(key, s.outboxIndexKey())
	err := s.transact(ctx, "retrying outbox entry", key, func(tx *redis.Tx) error {
		raw, err := tx.HGet(ctx, key, seq).Bytes()
		if errors.Is(err, redis.Nil) {
			return errAbort{store.ErrNotFound}
		}
		if err != nil {
			return err
		}
		var e store.OutboxEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return errAbort{fmt.Errorf("decoding outbox entry: %w", err)}
		}
		if e.Status != store.OutboxFailed {
			return errAbort{store.ErrNotFound}
		}
		e.Status, e.Attempts, e.NextAttemptAt, e.DoneAt = store.OutboxPending, 0, now, time.Time{}
		for name, st := range e.Targets {
			if st == store.OutboxFailed {
				e.Targets[name] = store.OutboxPending
			}
		}
		raw, _ = json.Marshal(e)
		n, _ := strconv.ParseInt(seq, 10, 64)
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, seq, raw, "n:"+seq, now.UnixMilli())
			p.ZAdd(ctx, s.outboxQueueKey(shard), redis.Z{Score: float64(n), Member: seq})
			if oneSlot {
				s.requeued(ctx, p, shard, id)
			}
			return nil
		})
		return err
	})
	if err != nil || oneSlot {
		return err
	}
	// Cluster: right after (a lost index write is repaired by repairIndex).
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.requeued(ctx, p, shard, id)
		return nil
	})
	if err != nil {
		return failed(ctx, "retrying outbox entry", err)
	}
	return nil
}

// requeued writes the {outbox} side of a retry: the shard back in the
// index, due now; the entry out of the failed set; one more pending.
func (s *Store) requeued(ctx context.Context, p redis.Pipeliner, shard, id string) {
	p.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: 0, Member: shard})
	p.ZRem(ctx, s.outboxFailedKey(), id)
	p.Incr(ctx, s.outboxPendingKey())
}

// OutboxPending implements store.Outbox: one GET of the pending count
// (see the top of this file for how it is kept, and its drift on
// Cluster).
func (s *Store) OutboxPending(ctx context.Context) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	n, err := s.client.Get(ctx, s.outboxPendingKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, failed(ctx, "counting pending outbox entries", err)
	}
	return max(n, 0), nil
}

// TrimOutbox implements store.Outbox: it walks the log from its oldest
// entry created before before (pending and failed entries, which are
// kept, are stepped over, at most trimScan times limit of them) and
// deletes up to limit delivered before it.
func (s *Store) TrimOutbox(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	n := 0
	var offset int64
	for scanned := 0; n < limit && scanned < trimScan*limit; {
		ids, err := s.client.ZRangeByScore(ctx, s.outboxLogKey(), &redis.ZRangeBy{
			Min: "-inf", Max: "(" + strconv.FormatInt(before.UnixMilli(), 10), Offset: offset, Count: int64(limit),
		}).Result()
		if err != nil {
			return n, failed(ctx, "trimming outbox", err)
		}
		if len(ids) == 0 {
			return n, nil
		}
		scanned += len(ids)
		es, err := s.readEntries(ctx, ids)
		if err != nil {
			return n, failed(ctx, "trimming outbox", err)
		}
		kept := int64(len(ids))
		for _, e := range es {
			if n == limit || e.Status != store.OutboxDelivered || !e.DoneAt.Before(before) {
				continue
			}
			shard, seq, _ := splitEntryID(e.ID)
			if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.HDel(ctx, s.outboxKey(shard), seq)
				p.ZRem(ctx, s.outboxLogKey(), e.ID)
				return nil
			}); err != nil {
				return n, failed(ctx, "trimming outbox", err)
			}
			n++
			kept--
		}
		offset += kept
	}
	return n, nil
}

// trimScan bounds how far past kept entries one TrimOutbox call looks.
const trimScan = 16

// TrimAudit implements store.Outbox: the audit stream is trimmed from its
// oldest entry up to the first one at or after before, at most limit
// entries at a time.
func (s *Store) TrimAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	msgs, err := s.client.XRangeN(ctx, s.auditKey(), "-", "+", int64(limit)).Result()
	if err != nil {
		return 0, failed(ctx, "trimming audit log", err)
	}
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		var ev store.AuditEvent
		raw, _ := m.Values["event"].(string)
		if json.Unmarshal([]byte(raw), &ev) == nil && !ev.At.Before(before) {
			break
		}
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.client.XDel(ctx, s.auditKey(), ids...).Result()
	if err != nil {
		return 0, failed(ctx, "trimming audit log", err)
	}
	return int(n), nil
}

// Interface guards
var _ store.Outbox = (*Store)(nil)

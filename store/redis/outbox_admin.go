package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// The outbox as the author sees it: entries listed page by page, a failed
// entry queued again, the pending count.

// outboxCursor is the last entry listed: its score in the log (or the
// failed set), in milliseconds, and its id. Not an offset: entries trimmed
// or retried between two pages would shift every offset after them, and
// the next page would skip as many entries.
var outboxCursor = regexp.MustCompile(`^(-?[0-9]{1,16})~(\S{1,256})$`) // the id may hold ~ (~events)

// OutboxEntries implements store.Outbox: failed entries from their set
// (by failure time), pending ones from :queued and the others from the
// log (both by creation), oldest first (by score, then id, as Redis
// orders them); the cursor names the last entry of the page. :queued is
// scored as the log is, so a cursor of a pending page issued when
// pending entries were read from the log still works. A pending or
// failed page reads its own entries (and those its index still holds
// after a lost write on Cluster, skipped); a delivered page (or one of
// all entries) walks the log, delivered entries having no index of
// their own: pending and failed ones between them are read and skipped.
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
	key := s.outboxLogKey()
	switch q.Status {
	case store.OutboxFailed:
		key = s.outboxFailedKey()
	case store.OutboxPending:
		if err := s.backfillQueued(ctx); err != nil {
			return nil, "", failed(ctx, "reading outbox: indexing the entries pending before :queued existed", err)
		}
		key = s.outboxQueuedKey()
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
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
	var created time.Time // the entry's CreatedAt: its score in :queued
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
		created = e.CreatedAt
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
				s.requeued(ctx, p, shard, id, created)
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
		s.requeued(ctx, p, shard, id, created)
		return nil
	})
	if err != nil {
		return failed(ctx, "retrying outbox entry", err)
	}
	return nil
}

// requeued writes the {outbox} side of a retry: the shard back in the
// index, due now; the entry out of the failed set and back among the
// pending entries, scored by its creation as in the log; one more
// pending.
func (s *Store) requeued(ctx context.Context, p redis.Pipeliner, shard, id string, created time.Time) {
	p.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: 0, Member: shard})
	p.ZRem(ctx, s.outboxFailedKey(), id)
	p.ZAdd(ctx, s.outboxQueuedKey(), redis.Z{Score: float64(created.UnixMilli()), Member: id})
	p.Incr(ctx, s.outboxPendingKey())
}

// OutboxPending implements store.Outbox: one GET of the pending count
// (see the top of outbox.go for how it is kept, and its drift on
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

// OutboxFailed implements store.OutboxCounter: one ZCARD of the failed
// set. On Cluster it drifts as the set does (see the top of outbox.go): a
// retry whose write after EXEC was lost leaves its entry counted.
func (s *Store) OutboxFailed(ctx context.Context) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	n, err := s.client.ZCard(ctx, s.outboxFailedKey()).Result()
	if err != nil {
		return 0, failed(ctx, "counting failed outbox entries", err)
	}
	return n, nil
}

// backfillShards is how many shards of the outbox index one step of
// backfillQueued reads.
const backfillShards = 200

// backfillQueued puts into :queued the entries pending before it existed
// (a keyspace an earlier version wrote), once per keyspace: it sets
// :queued:built when done, and this Store remembers having seen that key.
// It reads only what is pending: the shards of the outbox index (by
// ZSCAN, which sees every shard there for the whole walk, however it is
// rescored meanwhile), their queues and the entries queued there, never
// the delivered entries. Each step has its own timeout, so a large
// backlog takes several (one console page load waits for them, once); a
// failure leaves :queued:built unset and the next listing starts over
// (adding is idempotent). An entry settled while it runs could be added
// after its settle took it off :queued: each one added is looked up in its
// queue afterwards and taken off again if gone. Entries an earlier
// version appends after it ran (both versions running during an upgrade)
// are claimed and delivered as ever, but not listed as pending while they
// are (failed, they are listed as failed).
func (s *Store) backfillQueued(ctx context.Context) error {
	s.mu.Lock()
	built := s.queuedBuilt
	s.mu.Unlock()
	if built {
		return nil
	}
	s.backfill.Lock()
	defer s.backfill.Unlock()
	step := func(fn func(ctx context.Context) error) error {
		ctx, cancel := s.withTimeout(ctx)
		defer cancel()
		return fn(ctx)
	}
	var n int64
	err := step(func(ctx context.Context) (err error) {
		n, err = s.client.Exists(ctx, s.outboxQueuedBuiltKey()).Result()
		return err
	})
	if err != nil {
		return err
	}
	for cursor := uint64(0); n == 0; {
		var kv []string
		err := step(func(ctx context.Context) (err error) {
			kv, cursor, err = s.client.ZScan(ctx, s.outboxIndexKey(), cursor, "", backfillShards).Result()
			return err
		})
		if err != nil {
			return err
		}
		shards := make([]string, 0, len(kv)/2)
		for i := 0; i < len(kv); i += 2 { // member, score, member, score…
			shards = append(shards, kv[i])
		}
		if err := step(func(ctx context.Context) error { return s.queueShards(ctx, shards) }); err != nil {
			return err
		}
		if cursor == 0 {
			err := step(func(ctx context.Context) error { return s.client.Set(ctx, s.outboxQueuedBuiltKey(), 1, 0).Err() })
			if err != nil {
				return err
			}
			break
		}
	}
	s.mu.Lock()
	s.queuedBuilt = true
	s.mu.Unlock()
	return nil
}

// queueShards adds the pending entries of shards' queues to :queued (NX:
// one there keeps its score), then takes off those no longer queued.
func (s *Store) queueShards(ctx context.Context, shards []string) error {
	if len(shards) == 0 {
		return nil
	}
	queues := make([]*redis.StringSliceCmd, len(shards))
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, shard := range shards {
			queues[i] = p.ZRange(ctx, s.outboxQueueKey(shard), 0, -1)
		}
		return nil
	}); err != nil {
		return err
	}
	var ids []string
	for i, q := range queues {
		for _, seq := range q.Val() {
			ids = append(ids, shards[i]+":"+seq)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	es, err := s.readEntries(ctx, ids)
	if err != nil {
		return err
	}
	zs := make([]redis.Z, 0, len(es))
	for _, e := range es {
		if e.Status == store.OutboxPending {
			zs = append(zs, redis.Z{Score: float64(e.CreatedAt.UnixMilli()), Member: e.ID})
		}
	}
	if len(zs) == 0 {
		return nil
	}
	if err := s.client.ZAddNX(ctx, s.outboxQueuedKey(), zs...).Err(); err != nil {
		return err
	}
	still := make([]*redis.FloatCmd, len(zs))
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			shard, seq, _ := splitEntryID(z.Member.(string))
			still[i] = p.ZScore(ctx, s.outboxQueueKey(shard), seq)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var gone []any
	for i, c := range still {
		switch err := c.Err(); {
		case errors.Is(err, redis.Nil):
			gone = append(gone, zs[i].Member)
		case err != nil:
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return s.client.ZRem(ctx, s.outboxQueuedKey(), gone...).Err()
}

// Interface guards
var _ store.OutboxCounter = (*Store)(nil)

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

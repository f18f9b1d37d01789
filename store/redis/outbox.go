package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
//	P{outbox}:queued   zset  pending entry ids scored by creation (unix ms),
//	                         as in the log: the pending part of the log
//	P{outbox}:queued:built  string  set once :queued holds the entries
//	                         pending before it existed (backfillQueued)
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
// The failed set and :queued are what the author lists by status: a
// page of failed or pending entries reads those entries only, however
// many delivered ones the log holds. They change with the status: an
// append adds to :queued, a settle that ends an entry takes it off
// :queued (and files a failed one in the failed set), a retry moves it
// from the failed set back to :queued; a trim takes delivered entries
// only, and takes them off :queued too, should a lost write on Cluster
// have left one there. With a plain client each is in the script or
// MULTI/EXEC of the change; on Cluster it is the write right after, and a
// lost one leaves an entry listed under a status it no longer has, which
// the listing skips (it checks each entry's own status), or not listed
// under the one it has until its next change.
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
//
// Here: the keys, appending (in a change's transaction or alone) and
// reading entries. Claiming and settling are in outbox_claim.go, listing,
// retrying and counting in outbox_admin.go, trimming in outbox_trim.go.

// globalShard holds the events of no licence.
const globalShard = "~events"

func (s *Store) outboxKey(shard string) string      { return s.prefix + "{" + shard + "}:ob" }
func (s *Store) outboxQueueKey(shard string) string { return s.prefix + "{" + shard + "}:obq" }
func (s *Store) outboxIndexKey() string             { return s.prefix + "{outbox}" }
func (s *Store) outboxLogKey() string               { return s.prefix + "{outbox}:log" }
func (s *Store) outboxFailedKey() string            { return s.prefix + "{outbox}:failed" }
func (s *Store) outboxPendingKey() string           { return s.prefix + "{outbox}:pending" }
func (s *Store) outboxQueuedKey() string            { return s.prefix + "{outbox}:queued" }
func (s *Store) outboxQueuedBuiltKey() string       { return s.prefix + "{outbox}:queued:built" }

// queueEvents adds the writes of evs (audit entries, outbox entries after
// seq, the index, and the licence's timeline for those of the licence) to
// p, the transaction of the change, or to deferred for the keys another
// slot holds.
func (s *Store) queueEvents(ctx context.Context, p redis.Pipeliner, deferred *[]func(redis.Pipeliner), shard string, seq int64, evs []store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	ob, obq := s.outboxKey(shard), s.outboxQueueKey(shard)
	var ids []string
	var created []float64
	var timeline []any
	for _, ev := range evs {
		seq++
		ev.ID = ""
		if shard != globalShard && store.OnTimeline(shard, &ev) {
			timeline = append(timeline, timelineRecord(ev, seq))
		}
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
	if len(timeline) > 0 {
		s.pushTimeline(ctx, p, shard, timeline)
	}
	index := func(p redis.Pipeliner) {
		p.ZAdd(ctx, s.outboxIndexKey(), redis.Z{Score: 0, Member: shard})
		queued := make([]redis.Z, len(ids))
		for i, id := range ids {
			p.ZAdd(ctx, s.outboxLogKey(), redis.Z{Score: created[i], Member: id})
			queued[i] = redis.Z{Score: created[i], Member: id}
		}
		p.ZAdd(ctx, s.outboxQueuedKey(), queued...)
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

// Interface guards
var _ store.Outbox = (*Store)(nil)

package redis

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// Retention: delivered outbox entries and old audit entries are deleted
// in bounded steps; pending and failed entries are kept.

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
				p.ZRem(ctx, s.outboxQueuedKey(), e.ID) // a Cluster's lost settle write
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
// entries at a time. The timelines of the licences whose entries it
// takes are trimmed to the same cutoff first, so a licence's copy of an
// event never outlives the log's entry (a failure leaves the log as it
// was, for the next round).
func (s *Store) TrimAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	msgs, err := s.client.XRangeN(ctx, s.auditKey(), "-", "+", int64(limit)).Result()
	if err != nil {
		return 0, failed(ctx, "trimming audit log", err)
	}
	ids := make([]string, 0, len(msgs))
	licences := map[string]bool{}
	for _, m := range msgs {
		var ev store.AuditEvent
		raw, _ := m.Values["event"].(string)
		decoded := json.Unmarshal([]byte(raw), &ev) == nil
		if decoded && !ev.At.Before(before) {
			break
		}
		if decoded && ev.LicenseID != "" {
			licences[ev.LicenseID] = true
		}
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := s.trimTimelines(ctx, licences, before); err != nil {
		return 0, failed(ctx, "trimming audit log: licence timelines", err)
	}
	n, err := s.client.XDel(ctx, s.auditKey(), ids...).Result()
	if err != nil {
		return 0, failed(ctx, "trimming audit log", err)
	}
	return int(n), nil
}

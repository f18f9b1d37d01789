package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// The outbox: bucketOutbox holds every entry by its id (16 hex digits of
// one sequence, so ids increase in write order), bucketOutboxPending the
// pending ones (id -> licence id, "" for events of no licence) and
// bucketOutboxFailed the failed ones (id -> nothing). A claim walks the
// pending entries in order and takes, per licence, only the first, so a
// licence's events go out in order.
//
// The two status indexes change in the transaction that changes an
// entry's status: an append queues it pending, a settle takes it off
// pending (unless it stays pending) and files it failed when it failed, a
// retry moves it from failed back to pending. A claim changes no status,
// and a trim deletes delivered entries only, which neither index holds.
// So listing the pending or the failed entries reads only those: a page
// costs its own entries, however many delivered ones the outbox keeps.

// writeEvents appends evs as audit entries and pending outbox entries in
// tx, the transaction of the change they record, and those of licence
// licenseID to its timeline.
func writeEvents(tx *bolt.Tx, licenseID string, evs []store.AuditEvent) error {
	audit, ob, pending := tx.Bucket(bucketAudit), tx.Bucket(bucketOutbox), tx.Bucket(bucketOutboxPending)
	timeline := false
	for _, ev := range evs {
		seq, err := audit.NextSequence()
		if err != nil {
			return err
		}
		ev.ID = fmt.Sprintf("%016x", seq)
		if err := putJSON(audit, ev.ID, ev); err != nil {
			return err
		}
		if store.OnTimeline(licenseID, &ev) {
			if err := addTimeline(tx, ev); err != nil {
				return err
			}
			timeline = true
		}
		oseq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		e := store.OutboxEntry{ID: fmt.Sprintf("%016x", oseq), Event: ev, Status: store.OutboxPending, CreatedAt: ev.At}
		if err := putJSON(ob, e.ID, e); err != nil {
			return err
		}
		if err := pending.Put([]byte(e.ID), []byte(licenseID)); err != nil {
			return err
		}
	}
	if timeline {
		return boundTimeline(tx, licenseID)
	}
	return nil
}

// AppendEvents implements store.Outbox.
func (s *Store) AppendEvents(ctx context.Context, evs []store.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	return s.update(ctx, "appending events", func(tx *bolt.Tx) error {
		return writeEvents(tx, "", evs)
	})
}

func claimToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// ClaimOutbox implements store.Outbox. It looks in a read transaction
// first, so an idle poll costs no write (and no fsync).
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.OutboxEntry, error) {
	var due []store.OutboxEntry
	err := s.view(ctx, "claiming outbox entries", func(tx *bolt.Tx) error {
		var err error
		due, err = dueHeads(tx, now, limit)
		return err
	})
	if err != nil || len(due) == 0 {
		return nil, err
	}
	var out []store.OutboxEntry
	err = s.update(ctx, "claiming outbox entries", func(tx *bolt.Tx) error {
		heads, err := dueHeads(tx, now, limit)
		if err != nil {
			return err
		}
		out = heads[:0]
		ob := tx.Bucket(bucketOutbox)
		for _, e := range heads {
			e.Claim, e.ClaimedUntil = claimToken(), now.Add(lease)
			if err := putJSON(ob, e.ID, e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dueHeads returns up to limit entries due at now and not claimed, each
// the oldest pending entry of its licence.
func dueHeads(tx *bolt.Tx, now time.Time, limit int) ([]store.OutboxEntry, error) {
	var out []store.OutboxEntry
	ob := tx.Bucket(bucketOutbox)
	seen := make(map[string]bool)
	c := tx.Bucket(bucketOutboxPending).Cursor()
	for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
		shard := string(v)
		if seen[shard] {
			continue // a licence's later entry waits for its first
		}
		seen[shard] = true
		var e store.OutboxEntry
		found, err := getJSON(ob, string(k), &e)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if e.NextAttemptAt.After(now) || e.ClaimedUntil.After(now) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// SettleOutbox implements store.Outbox.
func (s *Store) SettleOutbox(ctx context.Context, e store.OutboxEntry) error {
	return s.update(ctx, "settling outbox entry", func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		var cur store.OutboxEntry
		found, err := getJSON(ob, e.ID, &cur)
		if err != nil {
			return err
		}
		if !found || cur.Claim == "" || cur.Claim != e.Claim {
			return errAbort{store.ErrNotClaimed}
		}
		e.Claim, e.ClaimedUntil = "", time.Time{}
		if err := putJSON(ob, e.ID, e); err != nil {
			return err
		}
		if e.Status == store.OutboxPending {
			return nil // still queued: its pending entry stays as it is
		}
		if err := tx.Bucket(bucketOutboxPending).Delete([]byte(e.ID)); err != nil {
			return err
		}
		if e.Status == store.OutboxFailed {
			return tx.Bucket(bucketOutboxFailed).Put([]byte(e.ID), nil)
		}
		return tx.Bucket(bucketOutboxFailed).Delete([]byte(e.ID))
	})
}

// OutboxEntries implements store.Outbox, oldest first (by id); the cursor
// is the last entry's id. Pending and failed entries are read through
// their index bucket, so a page reads its own entries and one key more.
// All entries, or the delivered ones, are read from the outbox itself:
// delivered entries have no index (they are most of the outbox, kept
// until TrimOutbox takes them), so that walk decodes every entry between
// two delivered ones.
func (s *Store) OutboxEntries(ctx context.Context, q store.OutboxQuery) ([]store.OutboxEntry, string, error) {
	if q.After != "" && !auditCursor.MatchString(q.After) {
		return nil, "", store.ErrBadCursor
	}
	if q.Limit <= 0 {
		return nil, "", nil
	}
	var out []store.OutboxEntry
	next := ""
	err := s.view(ctx, "reading outbox", func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		var index *bolt.Bucket
		switch q.Status {
		case store.OutboxPending:
			index = tx.Bucket(bucketOutboxPending)
		case store.OutboxFailed:
			index = tx.Bucket(bucketOutboxFailed)
		default:
			index = ob
		}
		c := index.Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && string(k) == q.After {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(out) == q.Limit {
				if index == ob && !hasStatus(v, q.Status) {
					continue // the next page may be empty: say so now
				}
				next = out[len(out)-1].ID
				return nil
			}
			if index != ob {
				if v = ob.Get(k); v == nil {
					continue
				}
			}
			var e store.OutboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decoding outbox entry %s: %w", k, err)
			}
			if q.Status != "" && e.Status != q.Status {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// hasStatus reports whether the outbox entry v has status (any, when
// empty), decoding only that field.
func hasStatus(v []byte, status string) bool {
	if status == "" {
		return true
	}
	var e struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(v, &e) == nil && e.Status == status
}

// indexFailed fills bucketOutboxFailed from the outbox, for a file
// written before that index existed: Open runs it once, in the
// transaction that creates the bucket. It reads every entry, but decodes
// only those whose JSON holds "status":"failed" (json.Marshal writes it
// so, without spaces; a match elsewhere in the entry is weeded out by
// decoding it).
func indexFailed(tx *bolt.Tx) error {
	failed := tx.Bucket(bucketOutboxFailed)
	mark := []byte(`"status":"` + store.OutboxFailed + `"`)
	return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		if !bytes.Contains(v, mark) || !hasStatus(v, store.OutboxFailed) {
			return nil
		}
		return failed.Put(k, nil)
	})
}

// RetryOutbox implements store.Outbox.
func (s *Store) RetryOutbox(ctx context.Context, id string, now time.Time) error {
	return s.update(ctx, "retrying outbox entry", func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOutbox)
		var e store.OutboxEntry
		found, err := getJSON(ob, id, &e)
		if err != nil {
			return err
		}
		if !found || e.Status != store.OutboxFailed {
			return errAbort{store.ErrNotFound}
		}
		e.Status, e.Attempts, e.NextAttemptAt, e.DoneAt = store.OutboxPending, 0, now, time.Time{}
		for name, st := range e.Targets {
			if st == store.OutboxFailed {
				e.Targets[name] = store.OutboxPending
			}
		}
		if err := putJSON(ob, id, e); err != nil {
			return err
		}
		if err := tx.Bucket(bucketOutboxFailed).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketOutboxPending).Put([]byte(id), []byte(e.Event.LicenseID))
	})
}

// OutboxPending implements store.Outbox: the pending bucket's key count,
// from bbolt's bucket statistics in a read transaction. That walks the
// bucket's pages (not its entries' JSON): a few hundred for a hundred
// thousand waiting entries, a scrape's worth of work that blocks no
// writer and needs no counter kept on the write path, so it is exact by
// construction and needs nothing on an existing file.
func (s *Store) OutboxPending(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(ctx, "counting pending outbox entries", func(tx *bolt.Tx) error {
		n = int64(tx.Bucket(bucketOutboxPending).Stats().KeyN)
		return nil
	})
	return n, err
}

// OutboxFailed implements store.OutboxCounter: the failed bucket's key
// count, read as OutboxPending reads the pending one's.
func (s *Store) OutboxFailed(ctx context.Context) (int64, error) {
	var n int64
	err := s.view(ctx, "counting failed outbox entries", func(tx *bolt.Tx) error {
		n = int64(tx.Bucket(bucketOutboxFailed).Stats().KeyN)
		return nil
	})
	return n, err
}

// TrimOutbox implements store.Outbox.
func (s *Store) TrimOutbox(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.trim(ctx, "trimming outbox", bucketOutbox, limit, func(v []byte) (bool, bool) {
		var e store.OutboxEntry
		if json.Unmarshal(v, &e) != nil {
			return false, false
		}
		return e.Status == store.OutboxDelivered && e.DoneAt.Before(before), false
	}, nil)
}

// TrimAudit implements store.Outbox. Entries are in append order, so the
// walk stops at the first one kept. An entry's copy on its licence's
// timeline goes with it.
func (s *Store) TrimAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.trim(ctx, "trimming audit log", bucketAudit, limit, func(v []byte) (bool, bool) {
		var ev store.AuditEvent
		if json.Unmarshal(v, &ev) != nil {
			return false, false
		}
		old := ev.At.Before(before)
		return old, !old
	}, dropTimelineCopy)
}

// dropTimelineCopy deletes the timeline copy of the audit entry k, v
// (none is no error).
func dropTimelineCopy(tx *bolt.Tx, k, v []byte) error {
	var ev store.AuditEvent
	if json.Unmarshal(v, &ev) != nil || ev.LicenseID == "" {
		return nil
	}
	return tx.Bucket(bucketTimeline).Delete(timelineKey(ev.LicenseID, string(k)))
}

// trim deletes up to limit records of bucket that dead says are, found in
// a read transaction and deleted in a short write transaction that checks
// them again; dead's stop ends the walk. also, when not nil, deletes what
// goes with a record, in the same transaction.
func (s *Store) trim(ctx context.Context, op string, bucket []byte, limit int, dead func([]byte) (del, stop bool), also func(tx *bolt.Tx, k, v []byte) error) (int, error) {
	var keys [][]byte
	err := s.view(ctx, op, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil && len(keys) < limit; k, v = c.Next() {
			del, stop := dead(v)
			if stop {
				return nil
			}
			if del {
				keys = append(keys, bytes.Clone(k))
			}
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	n := 0
	err = s.update(ctx, op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		n = 0
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				continue
			}
			if del, _ := dead(v); !del {
				continue
			}
			if also != nil {
				if err := also(tx, k, v); err != nil {
					return err
				}
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Interface guards
var (
	_ store.Outbox        = (*Store)(nil)
	_ store.OutboxCounter = (*Store)(nil)
)

package embedded

import (
	"bytes"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// sweepInterval is how often expired records are deleted.
const sweepInterval = time.Hour

// sweepBatch bounds how many records one sweep step reads (in a read
// transaction, which does not hold writers up) and deletes (in a write
// transaction of its own), so a sweep never blocks activations for longer
// than a few small writes.
const sweepBatch = 256

// janitor deletes expired refresh families and idempotency answers, which
// Redis expires by TTL, until Close.
func (s *Store) janitor() {
	defer close(s.swept)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_, _ = s.Sweep(s.now()) // a failed sweep is retried next time; nothing waits on it
		}
	}
}

// refreshGrace keeps an expired refresh family's record a day longer, so a
// replay just after expiry is still recognised (as Redis does).
const refreshGrace = 24 * time.Hour

// Sweep deletes refresh families expired before now (less a day's grace)
// and idempotency answers past their TTL, a batch at a time; it returns
// how many. It stops early when the store is closed.
func (s *Store) Sweep(now time.Time) (int, error) {
	n, err := s.sweepBucket(bucketRefresh, func(v []byte) bool {
		var f store.RefreshFamily
		return json.Unmarshal(v, &f) == nil && !f.ExpiresAt.IsZero() && now.After(f.ExpiresAt.Add(refreshGrace))
	})
	if err != nil {
		return n, unavailable("sweeping expired refresh families", err)
	}
	m, err := s.sweepBucket(bucketIdempotency, func(v []byte) bool {
		var rec idempotent
		return json.Unmarshal(v, &rec) == nil && now.After(rec.ExpiresAt)
	})
	n += m
	if err != nil {
		return n, unavailable("sweeping expired idempotency answers", err)
	}
	return n, nil
}

// sweepBucket deletes the records of bucket that expired says are, in
// steps of sweepBatch records: each step finds them in a read transaction
// and deletes them in a short write transaction that checks them again (a
// record rewritten meanwhile may be live).
func (s *Store) sweepBucket(bucket []byte, expired func([]byte) bool) (int, error) {
	n := 0
	var after []byte // the last key read; nil before the first step
	for {
		select {
		case <-s.stop:
			return n, errClosed
		default:
		}
		var dead [][]byte
		done := false
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for i := 0; i < sweepBatch; i++ {
				if k == nil {
					done = true
					return nil
				}
				if expired(v) {
					dead = append(dead, bytes.Clone(k))
				}
				after = bytes.Clone(k)
				k, v = c.Next()
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return n, err
		}
		if len(dead) > 0 {
			deleted := 0
			err = s.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucket)
				deleted = 0
				for _, k := range dead {
					if v := b.Get(k); v == nil || !expired(v) {
						continue
					}
					if err := b.Delete(k); err != nil {
						return err
					}
					deleted++
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			n += deleted
		}
		if done {
			return n, nil
		}
	}
}

package embedded

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// sweepInterval is how often expired records are deleted.
const sweepInterval = time.Hour

// janitor deletes expired refresh tokens and idempotency answers, which
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

// refreshGrace keeps an expired refresh token's record a day longer, so a
// replay just after expiry is still recognised (as Redis does).
const refreshGrace = 24 * time.Hour

// Sweep deletes refresh-token records expired before now (less a day's
// grace) and idempotency answers past their TTL; it returns how many.
func (s *Store) Sweep(now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if n, err = sweepBucket(tx.Bucket(bucketRefresh), func(v []byte) bool {
			var rt store.RefreshToken
			return json.Unmarshal(v, &rt) == nil && !rt.ExpiresAt.IsZero() && now.After(rt.ExpiresAt.Add(refreshGrace))
		}); err != nil {
			return err
		}
		m, err := sweepBucket(tx.Bucket(bucketIdempotency), func(v []byte) bool {
			var rec idempotent
			return json.Unmarshal(v, &rec) == nil && now.After(rec.ExpiresAt)
		})
		n += m
		return err
	})
	if err != nil {
		return 0, unavailable("sweeping expired records", err)
	}
	return n, nil
}

func sweepBucket(b *bolt.Bucket, expired func([]byte) bool) (int, error) {
	var dead [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if expired(v) {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}

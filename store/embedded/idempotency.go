package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

type idempotent struct {
	Value     []byte    `json:"value"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Idempotent implements store.Store.
func (s *Store) Idempotent(ctx context.Context, key string) ([]byte, error) {
	var rec idempotent
	found, err := s.viewJSON(ctx, "reading idempotency record", bucketIdempotency, key, &rec)
	if err != nil {
		return nil, err
	}
	if !found || s.now().After(rec.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	return rec.Value, nil
}

// PutIdempotent implements store.Store.
func (s *Store) PutIdempotent(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, error) {
	var stored []byte
	err := s.update(ctx, "storing idempotency record", func(tx *bolt.Tx) error {
		stored = value // fn may run more than once (see update)
		b := tx.Bucket(bucketIdempotency)
		var rec idempotent
		found, err := getJSON(b, key, &rec)
		if err != nil {
			return err
		}
		if found && s.now().Before(rec.ExpiresAt) {
			stored = rec.Value
			return nil
		}
		return putJSON(b, key, idempotent{Value: value, ExpiresAt: s.now().Add(ttl)})
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

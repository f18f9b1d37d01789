package embedded

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// PutRefreshToken implements store.Store.
func (s *Store) PutRefreshToken(ctx context.Context, rt store.RefreshToken) error {
	return s.update(ctx, "storing refresh token", func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketRefresh), rt.Hash, rt)
	})
}

// RefreshToken implements store.Store.
func (s *Store) RefreshToken(ctx context.Context, hash string) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	found, err := s.viewJSON(ctx, "reading refresh token", bucketRefresh, hash, &rt)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return &rt, nil
}

// SpendRefreshToken implements store.Store.
func (s *Store) SpendRefreshToken(ctx context.Context, hash string, at time.Time, next store.RefreshToken) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	err := s.update(ctx, "spending refresh token", func(tx *bolt.Tx) error {
		rt = store.RefreshToken{} // fn may run more than once (see update)
		b := tx.Bucket(bucketRefresh)
		found, err := getJSON(b, hash, &rt)
		if err != nil {
			return err
		}
		if !found {
			return errAbort{store.ErrNotFound}
		}
		if !rt.SpentAt.IsZero() {
			return errAbort{store.ErrRefreshSpent}
		}
		rt.SpentAt = at
		if err := putJSON(b, hash, rt); err != nil {
			return err
		}
		return putJSON(b, next.Hash, next)
	})
	if errors.Is(err, store.ErrRefreshSpent) {
		return &rt, err
	}
	if err != nil {
		return nil, err
	}
	return &rt, nil
}

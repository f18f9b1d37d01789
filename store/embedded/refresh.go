package embedded

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// PutRefreshToken implements store.Store.
func (s *Store) PutRefreshToken(_ context.Context, rt store.RefreshToken) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketRefresh), rt.Hash, rt)
	})
	if err != nil {
		return unavailable("storing refresh token", err)
	}
	return nil
}

// RefreshToken implements store.Store.
func (s *Store) RefreshToken(_ context.Context, hash string) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bucketRefresh), hash, &rt)
		return err
	})
	if err != nil {
		return nil, unavailable("reading refresh token", err)
	}
	if !found {
		return nil, store.ErrNotFound
	}
	return &rt, nil
}

// SpendRefreshToken implements store.Store.
func (s *Store) SpendRefreshToken(_ context.Context, hash string, at time.Time, next store.RefreshToken) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	var abort errAbort
	if errors.As(err, &abort) {
		if errors.Is(abort.err, store.ErrRefreshSpent) {
			return &rt, abort.err
		}
		return nil, abort.err
	}
	if err != nil {
		return nil, unavailable("spending refresh token", err)
	}
	return &rt, nil
}

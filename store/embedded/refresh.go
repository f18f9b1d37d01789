package embedded

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// PutRefreshFamily implements store.Store.
func (s *Store) PutRefreshFamily(ctx context.Context, f store.RefreshFamily) error {
	return s.update(ctx, "storing refresh family", func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketRefresh), f.ID, f)
	})
}

// RefreshFamily implements store.Store.
func (s *Store) RefreshFamily(ctx context.Context, id string) (*store.RefreshFamily, error) {
	var f store.RefreshFamily
	found, err := s.viewJSON(ctx, "reading refresh family", bucketRefresh, id, &f)
	if err != nil {
		return nil, err
	}
	if !found || id == "" {
		return nil, store.ErrNotFound
	}
	return &f, nil
}

// RotateRefreshFamily implements store.Store.
func (s *Store) RotateRefreshFamily(ctx context.Context, current string, next store.RefreshFamily) (*store.RefreshFamily, error) {
	var f store.RefreshFamily
	err := s.update(ctx, "rotating refresh family", func(tx *bolt.Tx) error {
		f = store.RefreshFamily{} // fn may run more than once (see update)
		b := tx.Bucket(bucketRefresh)
		found, err := getJSON(b, next.ID, &f)
		if err != nil {
			return err
		}
		if !found || next.ID == "" {
			return errAbort{store.ErrNotFound}
		}
		if f.Current != current {
			return errAbort{store.ErrRefreshSpent}
		}
		return putJSON(b, next.ID, next)
	})
	if errors.Is(err, store.ErrRefreshSpent) {
		return &f, err
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// DeleteRefreshFamily implements store.Store.
func (s *Store) DeleteRefreshFamily(ctx context.Context, id string) error {
	return s.update(ctx, "deleting refresh family", func(tx *bolt.Tx) error {
		if id == "" {
			return nil
		}
		return tx.Bucket(bucketRefresh).Delete([]byte(id))
	})
}

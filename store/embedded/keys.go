package embedded

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

func readKeys(tx *bolt.Tx) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
		var k store.SigningKey
		if err := json.Unmarshal(v, &k); err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].CreatedAt.Before(keys[j].CreatedAt) })
	return keys, err
}

// SigningKeys implements store.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	err := s.view(ctx, "reading signing keys", func(tx *bolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// AddSigningKey implements store.Store.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey, notBefore time.Time) ([]store.SigningKey, error) {
	var keys []store.SigningKey
	added := false
	err := s.update(ctx, "adding signing key", func(tx *bolt.Tx) error {
		added = false // fn may run more than once (see update)
		var err error
		keys, err = readKeys(tx)
		if err != nil {
			return err
		}
		if n := len(keys); n > 0 && keys[n-1].CreatedAt.After(notBefore) {
			return nil // another writer added a fresh key first
		}
		if err := putJSON(tx.Bucket(bucketKeys), k.ID, k); err != nil {
			return err
		}
		keys = append(keys, k)
		added = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if added {
		s.publish(store.Change{Keys: true})
	}
	return keys, nil
}

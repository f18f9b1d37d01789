package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// decodeKeys decodes the key ring's hash values, oldest first (ties by
// kid, as the embedded store orders them).
func decodeKeys(vals []string) ([]store.SigningKey, error) {
	keys := make([]store.SigningKey, 0, len(vals))
	for _, v := range vals {
		var k store.SigningKey
		if err := json.Unmarshal([]byte(v), &k); err != nil {
			return nil, fmt.Errorf("decoding signing key: %w", err)
		}
		keys = append(keys, k)
	}
	sortKeys(keys)
	return keys, nil
}

func sortKeys(keys []store.SigningKey) {
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].CreatedAt.Equal(keys[j].CreatedAt) {
			return keys[i].CreatedAt.Before(keys[j].CreatedAt)
		}
		return keys[i].ID < keys[j].ID
	})
}

// SigningKeys implements store.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	vals, err := s.client.HVals(ctx, s.signingKeysKey()).Result()
	if err != nil {
		return nil, failed(ctx, "reading signing keys", err)
	}
	keys, err := decodeKeys(vals)
	if err != nil {
		return nil, unavailable("reading signing keys", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys, nil
}

// keysNotice tells every instance to reload its key ring.
var keysNotice, _ = json.Marshal(store.Change{Keys: true})

// AddSigningKey implements store.Store, as a WATCH/MULTI transaction on the
// key ring: the newest key is compared with notBefore and the new key
// added only if no other instance rotated meanwhile. Adding one announces
// a Change with Keys set, in the same transaction.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey, notBefore time.Time) ([]store.SigningKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	const op = "adding signing key"
	unlock, err := s.lock(ctx, "signing keys")
	if err != nil {
		return nil, lockFailed(ctx, op, err)
	}
	defer unlock()
	raw, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	key := s.signingKeysKey()
	var ring []store.SigningKey
	err = s.transact(ctx, op, key, func(tx *redis.Tx) error {
		vals, err := tx.HVals(ctx, key).Result()
		if err != nil {
			return err
		}
		if ring, err = decodeKeys(vals); err != nil {
			return err
		}
		if n := len(ring); n > 0 && ring[n-1].CreatedAt.After(notBefore) {
			return nil // another instance added a fresh key first
		}
		if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, k.ID, raw)
			p.Publish(ctx, s.channel(), keysNotice)
			return nil
		}); err != nil {
			return err
		}
		var added store.SigningKey
		if err := json.Unmarshal(raw, &added); err != nil {
			return err
		}
		for i := range ring { // the same kid again replaces the key
			if ring[i].ID == k.ID {
				ring = append(ring[:i], ring[i+1:]...)
				break
			}
		}
		ring = append(ring, added)
		sortKeys(ring)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ring, nil
}

package redis

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// RecordSeen implements store.Store: one optimistic transaction
// per licence of the batch (WATCH, GET, MULTI/SET/EXEC on its state key),
// so a concurrent UpdateLicense on any instance either sees the new
// last-seen times or makes this write retry. The licence's version stays
// and nothing is published.
func (s *Store) RecordSeen(ctx context.Context, seen []store.Seen) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	order, by := store.SeenByLicense(seen)
	for _, id := range order {
		if err := s.recordSeen(ctx, id, by[id]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) recordSeen(ctx context.Context, licenseID string, seen []store.Seen) error {
	unlock, err := s.lock(ctx, "licence:"+licenseID)
	if err != nil {
		return lockFailed(ctx, "recording last seen", err)
	}
	defer unlock()
	key := s.stateKey(licenseID)
	return s.transact(ctx, "recording last seen", key, func(tx *redis.Tx) error {
		raw, err := getState(ctx, tx, key)
		if err != nil || raw == nil {
			return err
		}
		cur, err := decodeState(raw)
		if err != nil {
			return err
		}
		if cur.License == nil || !store.ApplySeen(cur, seen) {
			return nil
		}
		payload, err := json.Marshal(stateRecord{License: cur.License, Installations: cur.Installations})
		if err != nil {
			return errAbort{fmt.Errorf("recording last seen: encoding state: %w", err)}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, payload, 0)
			return nil
		})
		return err
	})
}

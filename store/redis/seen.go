package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// RecordSeen implements store.Store: one optimistic transaction
// per licence of the batch (WATCH, GET, MULTI/SET/EXEC on its state key),
// so a concurrent UpdateLicense on any instance either sees the new
// last-seen times or makes this write retry. A changed version moves its
// installation's count in the same MULTI (on Cluster, where the product's
// counts live in another slot, right after EXEC, as UpdateLicense writes
// its indexes). The licence's version stays and nothing is published.
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
	var later []func(redis.Pipeliner) // count writes outside the licence's slot
	err = s.transact(ctx, "recording last seen", key, func(tx *redis.Tx) error {
		later = nil
		raw, err := getState(ctx, tx, key)
		if err != nil || raw == nil {
			return err
		}
		cur, err := decodeState(raw)
		if err != nil {
			return err
		}
		stored := slices.Clone(cur.Installations)
		if cur.License == nil || !store.ApplySeen(cur, seen) {
			return nil
		}
		counts, err := s.versionWrites(ctx, tx, key, stored, cur.Installations)
		if err != nil {
			return err
		}
		payload, err := json.Marshal(stateRecord{License: cur.License, Installations: cur.Installations})
		if err != nil {
			return errAbort{fmt.Errorf("recording last seen: encoding state: %w", err)}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, payload, 0)
			for _, w := range counts {
				if s.sameSlot(key, w.key) {
					w.write(p)
				} else {
					later = append(later, w.write)
				}
			}
			return nil
		})
		return err
	})
	if err != nil || len(later) == 0 {
		return err
	}
	ictx, cancel := s.withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := s.client.Pipelined(ictx, func(p redis.Pipeliner) error {
		for _, w := range later {
			w(p)
		}
		return nil
	}); err != nil {
		return unavailable("recording last seen: committed, but counting versions", err)
	}
	return nil
}

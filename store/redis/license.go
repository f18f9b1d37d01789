package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// stateRecord is the JSON stored at a licence's state key.
type stateRecord struct {
	License       *store.License       `json:"license"`
	Installations []store.Installation `json:"installations"`
}

// decodeState decodes a stored state; nil raw is a licence not stored yet.
// Each call returns a new, unshared state.
func decodeState(raw []byte) (*store.LicenseState, error) {
	if raw == nil {
		return &store.LicenseState{}, nil
	}
	var rec stateRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decoding licence state: %w", err)
	}
	return &store.LicenseState{License: rec.License, Installations: rec.Installations}, nil
}

// getState reads a raw state with c (the client, or a transaction).
func getState(ctx context.Context, c redis.Cmdable, key string) ([]byte, error) {
	raw, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return raw, err
}

// LicenseState implements store.Store.
func (s *Store) LicenseState(ctx context.Context, licenseID string) (*store.LicenseState, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	raw, err := getState(ctx, s.client, s.stateKey(licenseID))
	if err != nil {
		return nil, failed(ctx, "reading licence", err)
	}
	st, err := decodeState(raw)
	if err != nil {
		return nil, unavailable("reading licence", err)
	}
	return st, nil
}

// dueScript moves a licence's entry in the due index, unless a newer
// version of the licence was indexed already (on Cluster the index is
// written after the licence's own transaction, so two instances' index
// writes may arrive out of order).
//
// KEYS[1]: the due index (zset), KEYS[2]: the versions it reflects (hash).
// ARGV[1]: licence id, ARGV[2]: the version just committed, ARGV[3]: its
// NextCheckAt in unix ms, or "" to remove the entry.
// Returns 1 when the entry was written, 0 when a newer version is indexed.
var dueScript = redis.NewScript(`
local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if seen >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
`)

// dueScore is NextCheckAt in unix ms rounded up, so a licence is never
// listed before it is due.
func dueScore(at time.Time) string {
	if at.IsZero() {
		return ""
	}
	ms := at.UnixMilli()
	if time.UnixMilli(ms).Before(at) {
		ms++
	}
	return strconv.FormatInt(ms, 10)
}

// UpdateLicense implements store.Store: WATCH the state key, read it, run
// fn on a fresh copy, and commit with MULTI/EXEC; when another instance
// wrote in between, EXEC fails and the whole round runs again (fn too)
// after a jittered backoff. This instance's own updates of the licence wait
// for each other on an in-process lock instead of racing.
func (s *Store) UpdateLicense(ctx context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	unlock, err := s.lock(ctx, "licence:"+licenseID)
	if err != nil {
		return nil, lockFailed(ctx, "updating licence", err)
	}
	defer unlock()

	key := s.stateKey(licenseID)
	notice, _ := json.Marshal(store.Change{LicenseID: licenseID})
	var (
		written  *store.LicenseState
		later    func(redis.Pipeliner) // index writes outside the licence's slot
		families []store.RefreshFamily // LicenseState.Families, stored once committed
	)
	err = s.transact(ctx, "updating licence", key, func(tx *redis.Tx) error {
		written, later, families = nil, nil, nil
		raw, err := getState(ctx, tx, key)
		if err != nil {
			return err
		}
		cur, err := decodeState(raw)
		if err != nil {
			return err
		}
		var version int64
		if cur.License != nil {
			version = cur.License.Version
		}
		had := make([]string, 0, len(cur.Installations))
		for _, in := range cur.Installations {
			had = append(had, in.ID)
		}
		terms := cur.Terms() // fn may edit cur
		share := store.CountedShare(cur)
		stored := slices.Clone(cur.Installations)
		next, err := fn(cur)
		if err != nil {
			return errAbort{err}
		}
		if next == nil { // nothing to write: answer the state as stored
			written, err = decodeState(raw)
			return err
		}
		if next.License == nil {
			return errAbort{errors.New("updating licence: state to write has no licence")}
		}
		if err := ctx.Err(); err != nil {
			return err // the caller went away (or time ran out) while fn decided: write nothing
		}
		lic := *next.License
		lic.Version = version + 1
		// The caller's slice stays as it was; the state written records
		// where each installation is counted.
		ins := slices.Clone(next.Installations)
		counts, err := s.versionWrites(ctx, tx, key, stored, ins)
		if err != nil {
			return err
		}
		counts = append(counts, s.statusWrites(ctx, share, &store.LicenseState{License: &lic, Installations: ins})...)
		payload, err := json.Marshal(stateRecord{License: &lic, Installations: ins})
		if err != nil {
			return errAbort{fmt.Errorf("updating licence: encoding state: %w", err)}
		}

		var seq int64
		if len(next.Events) > 0 {
			// Only writes of the state add entries, and the state key is
			// watched: the seq read here is still the last at EXEC.
			if seq, err = s.outboxSeq(ctx, tx, licenseID); err != nil {
				return err
			}
		}
		var deferred []func(redis.Pipeliner)
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, payload, 0)
			if err := s.queueEvents(ctx, p, &deferred, licenseID, seq, next.Events); err != nil {
				return err
			}
			kept := make([]string, 0, len(next.Installations))
			keep := make(map[string]bool, len(next.Installations))
			for _, in := range next.Installations {
				if in.ID != "" && !keep[in.ID] {
					keep[in.ID] = true
					kept = append(kept, in.ID)
				}
			}
			var forgotten []string
			for _, id := range had { // left out of the state: forgotten
				if id != "" && !keep[id] {
					forgotten = append(forgotten, id)
				}
			}
			writes := append(s.installWrites(ctx, licenseID, kept, forgotten), s.termWrites(ctx, licenseID, terms, next.Terms())...)
			for _, iw := range append(writes, counts...) {
				if s.sameSlot(key, iw.key) {
					iw.write(p)
				} else {
					deferred = append(deferred, iw.write)
				}
			}
			due := func(p redis.Pipeliner) {
				dueScript.Eval(ctx, p, []string{s.dueKey(), s.dueVersionsKey()}, licenseID, lic.Version, dueScore(lic.NextCheckAt))
			}
			if s.sameSlot(key, s.dueKey()) {
				due(p)
			} else {
				deferred = append(deferred, due)
			}
			listed := func(p redis.Pipeliner) {
				p.ZAdd(ctx, s.licensesKey(), redis.Z{Member: licenseID})
			}
			if s.sameSlot(key, s.licensesKey()) {
				listed(p)
			} else {
				deferred = append(deferred, listed)
			}
			p.Publish(ctx, s.channel(), notice)
			return nil
		})
		if err != nil {
			return err
		}
		if len(deferred) > 0 {
			later = func(p redis.Pipeliner) {
				for _, w := range deferred {
					w(p)
				}
			}
		}
		families = next.Families
		written, err = decodeState(payload)
		return err
	})
	if err != nil {
		return nil, err
	}
	if later != nil {
		// Committed: the indexes are written even if the caller has gone
		// away meanwhile, within a timeout of their own.
		ictx, cancel := s.withTimeout(context.WithoutCancel(ctx))
		defer cancel()
		if _, err := s.client.Pipelined(ictx, func(p redis.Pipeliner) error { later(p); return nil }); err != nil {
			return nil, unavailable("updating licence: committed, but writing its indexes", err)
		}
	}
	for _, f := range families {
		// Each family's key is a slot of its own: written after the state,
		// as PutRefreshFamily does, within a timeout of its own.
		fctx, cancel := s.withTimeout(context.WithoutCancel(ctx))
		err := s.PutRefreshFamily(fctx, f)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("updating licence: committed, but %w", err)
		}
	}
	return written, nil
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// refreshGrace keeps a refresh family's record a day past its expiry, so a
// late replay of a spent token is still recognised as reuse.
const refreshGrace = 24 * time.Hour

// Fields of a refresh family's hash.
const (
	fieldCurrent = "cur" // RefreshFamily.Current, for the rotation script
	fieldRecord  = "rec" // JSON store.RefreshFamily
)

// refreshKey is Prf:{<family>}: the family's one record. The family id is
// its hash tag, so any key added for a family later shares its slot.
func (s *Store) refreshKey(family string) string {
	return s.prefix + "rf:{" + family + "}"
}

// refreshExpiry is when a family's record may go: a day after its current
// token expires, or never for one without an expiry (zero).
func refreshExpiry(f store.RefreshFamily) time.Time {
	if f.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return f.ExpiresAt.Add(refreshGrace)
}

// unixMsArg is t in unix ms for a script, "0" for the zero time.
func unixMsArg(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func decodeFamily(rec string) (*store.RefreshFamily, error) {
	var f store.RefreshFamily
	if err := json.Unmarshal([]byte(rec), &f); err != nil {
		return nil, fmt.Errorf("decoding refresh family: %w", err)
	}
	return &f, nil
}

// PutRefreshFamily implements store.Store. The record expires a day after
// its current token.
func (s *Store) PutRefreshFamily(ctx context.Context, f store.RefreshFamily) error {
	const op = "storing refresh family"
	rec, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key := s.refreshKey(f.ID)
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, fieldCurrent, f.Current, fieldRecord, rec)
		if exp := refreshExpiry(f); !exp.IsZero() {
			p.PExpireAt(ctx, key, exp)
		}
		return nil
	})
	if err != nil {
		return failed(ctx, op, err)
	}
	return nil
}

// RefreshFamily implements store.Store.
func (s *Store) RefreshFamily(ctx context.Context, id string) (*store.RefreshFamily, error) {
	const op = "reading refresh family"
	if id == "" {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rec, err := s.client.HGet(ctx, s.refreshKey(id), fieldRecord).Result()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, failed(ctx, op, err)
	}
	f, err := decodeFamily(rec)
	if err != nil {
		return nil, unavailable(op, err)
	}
	return f, nil
}

// rotateScript replaces a family's record if its current token is still
// the one given, atomically.
//
// KEYS[1]: the family's key.
// ARGV[1]: the current token's hash, ARGV[2]: its successor's hash,
// ARGV[3]: the new record (JSON), ARGV[4]: its expiry in unix ms, or "0".
// Returns one of
//
//	{0}          no such family; nothing written
//	{1, record}  rotated; record is the one replaced
//	{2, record}  ARGV[1] is not current (spent); nothing written
var rotateScript = redis.NewScript(`
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then return {0} end
if redis.call('HGET', KEYS[1], 'cur') ~= ARGV[1] then return {2, rec} end
redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'rec', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
return {1, rec}
`)

// Outcomes of rotateScript.
const (
	rotateUnknown = 0
	rotateDone    = 1
	rotateSpent   = 2
)

// RotateRefreshFamily implements store.Store.
func (s *Store) RotateRefreshFamily(ctx context.Context, current string, next store.RefreshFamily) (*store.RefreshFamily, error) {
	const op = "rotating refresh family"
	if next.ID == "" {
		return nil, store.ErrNotFound
	}
	rec, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := rotateScript.Run(ctx, s.client, []string{s.refreshKey(next.ID)},
		current, next.Current, rec, unixMsArg(refreshExpiry(next))).Slice()
	if err != nil {
		return nil, failed(ctx, op, err)
	}
	var outcome int64 = -1
	if len(res) > 0 {
		outcome, _ = res[0].(int64)
	}
	if outcome == rotateUnknown && len(res) == 1 {
		return nil, store.ErrNotFound
	}
	var stored *store.RefreshFamily
	if len(res) == 2 {
		if raw, ok := res[1].(string); ok {
			if stored, err = decodeFamily(raw); err != nil {
				return nil, unavailable(op, err)
			}
		}
	}
	switch {
	case stored == nil:
	case outcome == rotateDone:
		return stored, nil
	case outcome == rotateSpent:
		return stored, store.ErrRefreshSpent
	}
	return nil, unavailable(op, fmt.Errorf("unexpected script answer (%d values)", len(res)))
}

// DeleteRefreshFamily implements store.Store.
func (s *Store) DeleteRefreshFamily(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.client.Del(ctx, s.refreshKey(id)).Err(); err != nil {
		return failed(ctx, "deleting refresh family", err)
	}
	return nil
}

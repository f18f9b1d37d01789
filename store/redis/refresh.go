package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// refreshGrace keeps a refresh token's record a day past its expiry, so a
// late replay of a spent token is still recognised as reuse.
const refreshGrace = 24 * time.Hour

// Fields of a refresh token's hash.
const (
	fieldRecord = "rec"   // JSON store.RefreshToken, SpentAt left zero
	fieldSpent  = "spent" // spend time, as time.Time.MarshalText
)

// refreshKey maps "<family>.<hash>" to Prt:{<family>}:<hash>: one family,
// one hash slot.
func (s *Store) refreshKey(hash string) (key, family string) {
	family, rest, _ := strings.Cut(hash, ".")
	return s.prefix + "rt:{" + family + "}:" + rest, family
}

// refreshExpiry is when a token's record may go: a day after the token
// expires, or never for a token without an expiry (zero).
func refreshExpiry(rt store.RefreshToken) time.Time {
	if rt.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return rt.ExpiresAt.Add(refreshGrace)
}

// unixMsArg is t in unix ms for a script, "0" for the zero time.
func unixMsArg(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func encodeRefresh(rt store.RefreshToken) ([]byte, error) {
	rt.SpentAt = time.Time{}
	return json.Marshal(rt)
}

func decodeRefresh(rec, spent string) (*store.RefreshToken, error) {
	var rt store.RefreshToken
	if err := json.Unmarshal([]byte(rec), &rt); err != nil {
		return nil, fmt.Errorf("decoding refresh token: %w", err)
	}
	if spent != "" {
		if err := rt.SpentAt.UnmarshalText([]byte(spent)); err != nil {
			return nil, fmt.Errorf("decoding refresh token spend time: %w", err)
		}
	}
	return &rt, nil
}

// PutRefreshToken implements store.Store. The record expires a day after
// the token; a token already expired by then is not kept at all.
func (s *Store) PutRefreshToken(ctx context.Context, rt store.RefreshToken) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key, _ := s.refreshKey(rt.Hash)
	rec, err := encodeRefresh(rt)
	if err != nil {
		return fmt.Errorf("storing refresh token: %w", err)
	}
	fields := []any{fieldRecord, rec}
	if !rt.SpentAt.IsZero() {
		spent, err := rt.SpentAt.MarshalText()
		if err != nil {
			return fmt.Errorf("storing refresh token: %w", err)
		}
		fields = append(fields, fieldSpent, spent)
	}
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, fields...)
		if exp := refreshExpiry(rt); !exp.IsZero() {
			p.PExpireAt(ctx, key, exp)
		}
		return nil
	})
	if err != nil {
		return failed(ctx, "storing refresh token", err)
	}
	return nil
}

// RefreshToken implements store.Store.
func (s *Store) RefreshToken(ctx context.Context, hash string) (*store.RefreshToken, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key, _ := s.refreshKey(hash)
	fields, err := s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, failed(ctx, "reading refresh token", err)
	}
	rec, ok := fields[fieldRecord]
	if !ok {
		return nil, store.ErrNotFound
	}
	rt, err := decodeRefresh(rec, fields[fieldSpent])
	if err != nil {
		return nil, unavailable("reading refresh token", err)
	}
	return rt, nil
}

// spendScript spends a refresh token and stores its successor, or reports
// why not, atomically.
//
// KEYS[1]: the token's hash, KEYS[2]: its successor's (same family, so the
// same slot).
// ARGV[1]: the spend time, ARGV[2]: the successor's record (JSON),
// ARGV[3]: the successor's expiry in unix ms, or "0" for none.
// Returns one of
//
//	{0}                 the token is unknown; nothing written
//	{1, record}         spent now; the successor is stored
//	{2, record, spent}  spent before, at spent; nothing written
var spendScript = redis.NewScript(`
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then return {0} end
local spent = redis.call('HGET', KEYS[1], 'spent')
if spent then return {2, rec, spent} end
redis.call('HSET', KEYS[1], 'spent', ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'rec', ARGV[2])
if ARGV[3] ~= '0' then redis.call('PEXPIREAT', KEYS[2], ARGV[3]) end
return {1, rec}
`)

// Outcomes of spendScript.
const (
	spendUnknown = 0
	spendDone    = 1
	spendReused  = 2
)

// SpendRefreshToken implements store.Store.
func (s *Store) SpendRefreshToken(ctx context.Context, hash string, at time.Time, next store.RefreshToken) (*store.RefreshToken, error) {
	key, family := s.refreshKey(hash)
	nextKey, nextFamily := s.refreshKey(next.Hash)
	if nextFamily != family || nextKey == key {
		return nil, fmt.Errorf("spending refresh token: successor %q is not a new token of family %q", next.Hash, family)
	}
	rec, err := encodeRefresh(next)
	if err != nil {
		return nil, fmt.Errorf("spending refresh token: %w", err)
	}
	spentAt, err := at.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("spending refresh token: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := spendScript.Run(ctx, s.client, []string{key, nextKey}, spentAt, rec, unixMsArg(refreshExpiry(next))).Slice()
	if err != nil {
		return nil, failed(ctx, "spending refresh token", err)
	}
	var outcome int64 = -1
	var fields []string
	if len(res) > 0 {
		outcome, _ = res[0].(int64)
	}
	for _, v := range res[min(1, len(res)):] {
		f, ok := v.(string)
		if !ok {
			outcome = -1
		}
		fields = append(fields, f)
	}
	switch {
	case outcome == spendUnknown:
		return nil, store.ErrNotFound
	case outcome == spendDone && len(fields) == 1:
		rt, err := decodeRefresh(fields[0], string(spentAt))
		if err != nil {
			return nil, unavailable("spending refresh token", err)
		}
		return rt, nil
	case outcome == spendReused && len(fields) == 2:
		rt, err := decodeRefresh(fields[0], fields[1])
		if err != nil {
			return nil, unavailable("spending refresh token", err)
		}
		return rt, store.ErrRefreshSpent
	}
	return nil, unavailable("spending refresh token", fmt.Errorf("unexpected script answer (%d values)", len(res)))
}

package redis

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// idempotencyScript stores an answer unless one is stored already.
//
// KEYS[1]: the answer's key. ARGV[1]: the answer, ARGV[2]: its TTL in ms.
// Returns the answer stored afterwards: the one found, or ARGV[1] after
// SET NX PX stored it.
var idempotencyScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return ARGV[1]
`)

// Idempotent implements store.Store.
func (s *Store) Idempotent(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := s.client.Get(ctx, s.idempotencyKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, failed(ctx, "reading idempotency record", err)
	}
	return v, nil
}

// PutIdempotent implements store.Store. Redis expires the record; a TTL
// that is not positive stores nothing (the answer would be gone at once).
func (s *Store) PutIdempotent(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		stored, err := s.Idempotent(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return value, nil
		}
		return stored, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ms := max(1, (ttl+time.Millisecond-1)/time.Millisecond)
	v, err := idempotencyScript.Run(ctx, s.client, []string{s.idempotencyKey(key)}, value, int64(ms)).Text()
	if err != nil {
		return nil, failed(ctx, "storing idempotency record", err)
	}
	return []byte(v), nil
}

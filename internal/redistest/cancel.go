package redistest

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// CancelHook is a go-redis hook that cancels an armed context as the next
// command (or pipeline) goes out: a caller that gives up in the middle of
// a store call, after the store's own checks of its context have passed.
type CancelHook struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

// CancellingClient returns a client of the server at addr, configured
// like the storage module's (ContextTimeoutEnabled), with a CancelHook on
// it; the client is closed when the test ends.
func CancellingClient(t testing.TB, addr string) (*redis.Client, *CancelHook) {
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	hook := &CancelHook{}
	client.AddHook(hook)
	t.Cleanup(func() { _ = client.Close() })
	return client, hook
}

// Cancelled returns a context that the next command cancels.
func (h *CancelHook) Cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	h.mu.Lock()
	h.cancel = cancel
	h.mu.Unlock()
	return ctx
}

func (h *CancelHook) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// DialHook implements redis.Hook.
func (h *CancelHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *CancelHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.fire()
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h *CancelHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.fire()
		return next(ctx, cmds)
	}
}

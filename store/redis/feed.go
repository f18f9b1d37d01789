package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// subscriberBuffer is how many changes wait for a slow subscriber before
// further ones are dropped for it (it is then sent a Resync: store.Offer).
const subscriberBuffer = 256

var errClosed = errors.New("store closed")

// Subscribe implements store.Store with Redis pub/sub: it returns once the
// server has confirmed the subscription, so every write committed after
// that is announced. go-redis reconnects and resubscribes by itself after a
// connection loss; changes published meanwhile are missed, so each
// resubscription is announced as Change{Resync: true}.
//
// The PubSub is always drained into a buffered channel without blocking,
// so a subscriber that does not read never makes Redis hold messages for
// it (nor, through the output buffer limit, drop the connection).
func (s *Store) Subscribe(ctx context.Context) (<-chan store.Change, error) {
	out := make(chan store.Change, subscriberBuffer)
	if ctx.Err() != nil {
		close(out)
		return out, nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, unavailable("subscribing to changes", errClosed)
	}

	sctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ps := s.client.Subscribe(sctx, s.channel())
	msg, err := ps.ReceiveTimeout(sctx, s.timeout)
	if err == nil {
		if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "subscribe" {
			err = fmt.Errorf("unexpected answer %T to SUBSCRIBE", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, failed(sctx, "subscribing to changes", err)
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ps.Close()
		return nil, unavailable("subscribing to changes", errClosed)
	}
	s.subs[ps] = struct{}{}
	s.mu.Unlock()

	in := ps.ChannelWithSubscriptions(redis.WithChannelSize(subscriberBuffer))
	go s.forward(ctx, ps, in, out)
	return out, nil
}

// forward decodes messages into out until ctx ends or the PubSub is closed
// (by Close), then closes out.
func (s *Store) forward(ctx context.Context, ps *redis.PubSub, in <-chan any, out chan<- store.Change) {
	defer func() {
		s.mu.Lock()
		delete(s.subs, ps)
		s.mu.Unlock()
		_ = ps.Close()
		for range in { // let go-redis's reader see the close and exit
		}
	}()
	defer close(out)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-in:
			if !ok {
				return
			}
			var c store.Change
			switch msg := m.(type) {
			case *redis.Subscription:
				// go-redis resubscribed after a reconnect: anything published
				// meanwhile was missed.
				c = store.Change{Resync: true}
			case *redis.Message:
				if json.Unmarshal([]byte(msg.Payload), &c) != nil || c == (store.Change{}) {
					continue
				}
			default:
				continue
			}
			store.Offer(out, c)
		}
	}
}

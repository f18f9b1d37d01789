package embedded

import (
	"context"

	"github.com/licensegate/licensegate/store"
)

// Subscribe implements store.Store: changes are announced in-process, to
// every app sharing this file (old and new config during a reload).
func (s *Store) Subscribe(ctx context.Context) (<-chan store.Change, error) {
	ch := make(chan store.Change, 256)
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		return nil, unavailable("subscribing", errClosed)
	default:
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		// Close closes the channel itself; this goroutine must not outlive it.
		select {
		case <-ctx.Done():
		case <-s.stop:
		}
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}()
	return ch, nil
}

func (s *Store) publish(c store.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		store.Offer(ch, c)
	}
}

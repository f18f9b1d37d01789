package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// The recheck lease: one worker across the instances sharing a store. Its
// fencing token goes with every write the worker makes (store.Fenced), so
// a holder that lost the lease cannot overwrite its successor's results.

// holding reports whether this instance holds the lease, as far as it
// knows.
func (w *rechecker) holding() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lease.Token != 0
}

// hold returns the token of the held lease, renewing it once a third of
// its TTL has passed, or acquiring it when not held; 0 when another
// instance holds it. A holding that follows another instance's starts
// fresh guards: what that holder observed is not known here.
func (w *rechecker) hold(ctx context.Context) (int64, error) {
	st, now := w.svc.cfg.Store, w.svc.now()
	w.mu.Lock()
	l := w.lease
	w.mu.Unlock()
	if l.Token != 0 {
		if now.Before(l.Expires.Add(-2 * RecheckLeaseTTL / 3)) {
			return l.Token, nil
		}
		renewed, err := st.RenewLease(ctx, l, now, RecheckLeaseTTL)
		switch {
		case err == nil:
			w.mu.Lock()
			if w.lease.Token == l.Token {
				w.lease = renewed
			}
			w.mu.Unlock()
			return l.Token, nil
		case !errors.Is(err, store.ErrLeaseLost) && now.Add(recheckPace+recheckCallTimeout).Before(l.Expires):
			// The store did not answer, but the lease outlasts a whole
			// check (its budget wait and its call): go on.
			return l.Token, nil
		case !errors.Is(err, store.ErrLeaseLost):
			w.drop(l.Token)
			return 0, fmt.Errorf("renewing the recheck lease: %w", err)
		}
		w.drop(l.Token)
		w.svc.log.Warn("recheck lease lost; trying to take it again")
	}
	got, err := st.AcquireLease(ctx, RecheckLease, w.svc.cfg.InstanceID, now, RecheckLeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("acquiring the recheck lease: %w", err)
	}
	w.mu.Lock()
	if got.Token != w.last && got.Token != w.last+1 {
		// Another instance held the lease since this one did (tokens go up
		// by one per holding): what it observed is not in these guards.
		w.guards = map[string]*sourceGuard{}
		w.svc.log.Info("recheck lease taken", zap.String("instance", w.svc.cfg.InstanceID), zap.Int64("token", got.Token))
	}
	w.lease, w.last = got, got.Token
	w.mu.Unlock()
	return got.Token, nil
}

// drop forgets the lease of token.
func (w *rechecker) drop(token int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lease.Token == token {
		w.lease = store.Lease{}
	}
}

// release gives the lease up (the worker stops), so another instance
// need not wait for it to expire.
func (w *rechecker) release() {
	w.mu.Lock()
	l := w.lease
	w.lease = store.Lease{}
	w.mu.Unlock()
	if l.Token == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.svc.cfg.Store.ReleaseLease(ctx, l); err != nil {
		w.svc.log.Warn("releasing the recheck lease", zap.Error(err))
	}
}

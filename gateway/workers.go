package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Worker is one piece of the service's background work.
type Worker struct {
	// Name labels the worker in logs: change_feed, key_reload, ...
	Name string
	// Run works until ctx ends, then returns nil. An error return or a
	// panic is a failure: whoever runs the worker (App.Start's supervisor)
	// runs it again after a backoff. A nil return before ctx ends means the
	// worker has nothing (more) to do.
	Run func(ctx context.Context) error
}

// Workers returns the background work the service needs, each to run in
// its own goroutine until the app stops: following the store's change
// feed, reloading the key ring (which also loads it the first time, so
// starting never waits on the store), writing the gate's last-seen
// batches and per-day counts, syncing quota counters, releasing idle
// installations
// (release_idle), with KeyRotation set rotating the signing key on
// schedule, unless every product's recheck is off the background recheck
// (one across instances, by its lease), and trimming the audit log and
// delivered outbox entries past their retention.
func (s *Service) Workers() []Worker {
	ws := []Worker{
		{Name: "change_feed", Run: s.followChanges},
		{Name: "key_reload", Run: s.reloadKeysPeriodically},
		{Name: "last_seen", Run: s.recordLastSeen},
		{Name: "daily_counts", Run: s.countDaily},
		{Name: "quota_sync", Run: s.syncQuotaPeriodically},
	}
	if s.releasesIdle() {
		ws = append(ws, Worker{Name: "idle_sweep", Run: s.sweepIdlePeriodically})
	}
	if s.cfg.KeyRotation > 0 {
		ws = append(ws, Worker{Name: "key_rotation", Run: s.rotateOnSchedule})
	}
	ws = append(ws, Worker{Name: "retention", Run: s.trimOnSchedule})
	if s.rechecks() {
		ws = append(ws, Worker{Name: "recheck", Run: s.RunRecheck})
	}
	return ws
}

// errFeedClosed is the change feed ending while the worker still runs
// (the store closed it, or lost its connection).
var errFeedClosed = errors.New("store change feed closed")

// followChanges follows the store's change feed until ctx ends: licence
// changes drop cached statuses, key notices reload the key ring. A feed
// that cannot be opened, or that ends, is a failure (retried by the
// supervisor); each new subscription drops every cached status, since
// changes may have been missed meanwhile.
func (s *Service) followChanges(ctx context.Context) error {
	changes, err := s.cfg.Store.Subscribe(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.obs.StoreError(OpChangeFeed)
		return fmt.Errorf("subscribing to store changes: %w", err)
	}
	s.cache.InvalidateAll()
	if !s.ring.Loaded() {
		s.reloadKeys(ctx) // the store is back: do not wait for key_reload's retry
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errFeedClosed
			}
			s.apply(ctx, ch)
		}
	}
}

// apply acts on one change notice.
func (s *Service) apply(ctx context.Context, ch store.Change) {
	if ch.Asked {
		// A check asked for (a store webhook on any instance): the licence
		// itself has not changed. The worker, if here, serves it now.
		s.recheck.hint(s.now())
		return
	}
	if ch.Resync {
		s.cache.InvalidateAll()
	}
	if ch.Resync || ch.Keys {
		s.reloadKeys(ctx)
	}
	if ch.LicenseID != "" {
		s.cache.Invalidate(ch.LicenseID)
	}
}

// keyReloadInterval is how often the key ring is re-read without notice.
const keyReloadInterval = 5 * time.Minute

// keyOpTimeout bounds one key-ring read or rotation.
const keyOpTimeout = 5 * time.Second

// reloadKeysPeriodically loads the key ring if it is not loaded yet (the
// app started without waiting for the store; until then the gate answers
// 503 store_unavailable), failing so the supervisor retries while the
// store is down, then re-reads it every keyReloadInterval to drop expired
// keys and catch a lost notice.
func (s *Service) reloadKeysPeriodically(ctx context.Context) error {
	if !s.ring.Loaded() {
		lctx, cancel := context.WithTimeout(ctx, keyOpTimeout)
		err := s.ring.Load(lctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return every(ctx, keyReloadInterval, s.reloadKeys)
}

// reloadKeys re-reads the key ring; a failure keeps the keys held.
func (s *Service) reloadKeys(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, keyOpTimeout)
	defer cancel()
	if err := s.ring.Load(lctx); err != nil && ctx.Err() == nil {
		s.obs.StoreError(OpKeyLoad)
		s.log.Warn("reloading signing keys", zap.Error(err))
	}
}

// rotateOnSchedule checks the current key's age every
// rotationCheckInterval and rotates it once it reaches KeyRotation.
func (s *Service) rotateOnSchedule(ctx context.Context) error {
	return every(ctx, s.rotationCheckInterval(), s.rotateIfDue)
}

// every calls fn every d until ctx ends, then returns nil.
func every(ctx context.Context, d time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn(ctx)
		}
	}
}

// rotationCheckInterval is how often the current key's age is checked: a
// quarter of KeyRotation, at most keyReloadInterval, at least a second.
func (s *Service) rotationCheckInterval() time.Duration {
	d := keyReloadInterval
	if r := s.cfg.KeyRotation; r > 0 && r/4 < d {
		d = max(r/4, time.Second)
	}
	return d
}

// rotateIfDue rotates the signing key on schedule. Another instance that
// rotated a moment earlier wins (the ring keeps a key made less than a
// second ago).
func (s *Service) rotateIfDue(ctx context.Context) {
	if s.cfg.KeyRotation <= 0 || !s.ring.Loaded() || s.ring.CurrentKeyAge() < s.cfg.KeyRotation {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, keyOpTimeout)
	defer cancel()
	added, err := s.ring.RotateScheduled(rctx, s.cfg.KeyRotation)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("rotating signing key on schedule", zap.Error(err))
		}
		return
	}
	if !added {
		return // another instance rotated a moment ago; its key is adopted
	}
	kid := s.ring.CurrentKeyID()
	s.log.Info("signing key rotated on schedule", zap.String("kid", kid))
	s.event(ctx, nil, Event{Actor: ActorGateway, Action: store.AuditKeysRotated, Detail: kid, Reason: "schedule"})
}

// DefaultOutboxRetention is how long delivered outbox entries are kept.
const DefaultOutboxRetention = 7 * 24 * time.Hour

// Retention trimming: how often, and how many records one store call
// deletes (small batches never hold writers up for long).
const (
	trimInterval = time.Hour
	trimBatch    = 256
)

// trimOnSchedule trims every trimInterval.
func (s *Service) trimOnSchedule(ctx context.Context) error {
	return every(ctx, trimInterval, func(ctx context.Context) { s.Trim(ctx) })
}

// Trim deletes audit entries older than AuditRetention (when set) and
// outbox entries delivered longer than OutboxRetention ago, a batch at a
// time; it returns how many. A failure is logged and retried next time.
func (s *Service) Trim(ctx context.Context) int {
	now := s.now()
	total := 0
	run := func(what string, trim func(context.Context, time.Time, int) (int, error), before time.Time) {
		for ctx.Err() == nil {
			n, err := trim(ctx, before, trimBatch)
			total += n
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("trimming "+what, zap.Error(err))
				}
				return
			}
			if n < trimBatch {
				return
			}
		}
	}
	if s.cfg.AuditRetention > 0 {
		run("audit log", s.cfg.Store.TrimAudit, now.Add(-s.cfg.AuditRetention))
	}
	run("outbox", s.cfg.Store.TrimOutbox, now.Add(-s.cfg.OutboxRetention))
	return total
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// The recheck worker's loop: a step (RecheckOnce) after another, and
// between steps a sleep until the next licence falls due that a hint of an
// earlier check cuts short.

// RunRecheck is the recheck worker: it runs RecheckOnce until ctx ends,
// at once again while a whole batch was due, else when the next licence
// falls due (the due index's first entry; at most recheckIdle on, and
// sooner when this instance schedules an earlier check: see hint), and
// releases the lease on the way out so another instance takes over at
// once. It returns nil when ctx ends.
func (s *Service) RunRecheck(ctx context.Context) error {
	defer s.recheck.release()
	for {
		n, err := s.RecheckOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("recheck step failed; retrying", zap.Error(err))
		}
		wait := time.Duration(0)
		switch {
		case err != nil:
			wait = recheckStandby
		case !s.recheck.holding():
			wait = recheckStandby
		case n < RecheckBatch:
			wait = s.untilNextDue(ctx)
		}
		if wait > 0 && !s.recheck.sleep(ctx, wait, s.now()) {
			return nil
		}
	}
}

// recheckMinWait is the least the worker sleeps when fewer than a batch
// were due: a licence due again at once (a claim that found nothing to
// check) does not spin the loop.
const recheckMinWait = 50 * time.Millisecond

// untilNextDue is how long the worker may sleep: until the due index's
// earliest entry, within [recheckMinWait, the idle cap]. The cap bounds
// how late a licence scheduled by another instance is seen: recheckIdle,
// or the shortest product interval when that is shorter (an author
// watching a `recheck every 1s` in staging).
func (s *Service) untilNextDue(ctx context.Context) time.Duration {
	limit := recheckIdle
	for _, p := range s.cfg.Products {
		if r := p.recheck; r.Mode != policy.RecheckOff && r.Every < limit {
			limit = max(r.Every, time.Second)
		}
	}
	if asks, err := s.cfg.Store.Asked(ctx, 1); err == nil && len(asks) > 0 {
		return recheckMinWait // a queued check whose notice this instance missed
	}
	next, err := s.cfg.Store.NextDue(ctx)
	if err != nil || next.IsZero() {
		return limit
	}
	return min(max(next.Sub(s.now()), recheckMinWait), limit)
}

// sleep waits d, or less when ctx ends (false then) or when hint names an
// earlier check meanwhile.
func (w *rechecker) sleep(ctx context.Context, d time.Duration, now time.Time) bool {
	w.wakeAt.Store(now.Add(d).UnixNano()) // hints from here on wake the sleep
	defer w.wakeAt.Store(0)
	if h := w.hinted.Swap(0); h != 0 {
		// A check scheduled while this step ran (after its due-index read).
		d = min(d, max(time.Duration(h-now.UnixNano()), 0))
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// hint tells a sleeping worker that a licence is due at at: it wakes now
// when that is before its planned wake. Cheap and never blocking, so any
// write that schedules a check may call it.
func (w *rechecker) hint(at time.Time) {
	if at.IsZero() {
		return
	}
	ns := at.UnixNano()
	wake := w.wakeAt.Load()
	if wake == 0 {
		// Awake: keep the earliest hint for the next sleep.
		for h := w.hinted.Load(); h == 0 || ns < h; h = w.hinted.Load() {
			if w.hinted.CompareAndSwap(h, ns) {
				break
			}
		}
		if w.wakeAt.Load() == 0 {
			return
		}
		// The worker fell asleep meanwhile (and may have taken the hint
		// already): wake it if the check is earlier, as below.
		wake = w.wakeAt.Load()
	}
	if ns < wake {
		select {
		case w.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// rechecks reports whether any product is rechecked in the background.
func (s *Service) rechecks() bool {
	for _, p := range s.cfg.Products {
		if p.recheck.Mode != policy.RecheckOff {
			return true
		}
	}
	return false
}

// RecheckOnce is one step of the worker, on the service's clock: take or
// renew the lease (returning 0 when another instance holds it), claim up
// to RecheckBatch due licences and check each, renewing the lease between
// checks. It returns how many licences it checked. A step that loses the
// lease midway stops; the licences it claimed are due again once their
// claim has run out.
func (s *Service) RecheckOnce(ctx context.Context) (int, error) {
	w := s.recheck
	token, err := w.hold(ctx)
	if err != nil || token == 0 {
		return 0, err
	}
	n, stop, err := s.serveAsks(ctx)
	if stop || err != nil || n == RecheckBatch {
		return n, err // lease gone, or more may be queued: the due index waits a step
	}
	ids, err := s.cfg.Store.ClaimDue(ctx, s.now(), RecheckBatch-n, RecheckClaim)
	if err != nil {
		return n, fmt.Errorf("claiming due licences: %w", err)
	}
	for _, id := range ids {
		if token, err = w.hold(ctx); err != nil || token == 0 {
			return n, err
		}
		_, err := s.recheckLicense(ctx, id, token, askedBySchedule)
		switch {
		case errors.Is(err, store.ErrFenced):
			// A later holder wrote this licence: this instance's lease is
			// gone, whatever it believed.
			s.log.Info("recheck: a later lease holder took over", zap.String("license_id", id))
			w.drop(token)
			return n, nil
		case errors.Is(err, ErrNotFound):
			continue // an index entry without its licence
		case err != nil:
			return n, err
		}
		n++
	}
	return n, nil
}

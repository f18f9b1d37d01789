package gateway

import (
	"context"
	"sort"
	"time"
)

// What GET stats shows of the recheck: the due index and this instance's
// lease and guards.

// RecheckStats is the recheck's part of GET stats.
type RecheckStats struct {
	// Scheduled counts licences with a next check; DueNow those due.
	Scheduled int64 `json:"scheduled"`
	DueNow    int64 `json:"due_now"`
	// Backlog is DueNow (licences waiting for a check); LagSeconds how
	// long the oldest due licence has waited.
	Backlog    int64 `json:"backlog"`
	LagSeconds int64 `json:"lag_seconds"`
	// LeaseHeld says this instance holds the recheck lease (the guards
	// below are the lease holder's: ask it).
	LeaseHeld bool                   `json:"lease_held"`
	Guards    map[string]GuardStatus `json:"guards"`
}

// GuardStatus is one source's mass-suspension guard.
type GuardStatus struct {
	Checks     int  `json:"checks_last_hour"`
	Invalid    int  `json:"definitive_invalid_last_hour"`
	DayChecks  int  `json:"checks_last_day"`
	DayInvalid int  `json:"definitive_invalid_last_day"`
	Tripped    bool `json:"tripped"`
	// Warm is false while the guard has watched for less than a day on
	// this instance (its day window has not seen a whole day yet).
	Warm bool `json:"warm"`
}

// RecheckStatus reads the due index and this instance's guards.
func (s *Service) RecheckStatus(ctx context.Context) (*RecheckStats, error) {
	now := s.now()
	ds, err := s.cfg.Store.DueStats(ctx, now)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	out := &RecheckStats{Scheduled: ds.Scheduled, DueNow: ds.Due, Backlog: ds.Due, Guards: map[string]GuardStatus{}}
	if ds.Due > 0 && !ds.Oldest.IsZero() && ds.Oldest.Before(now) {
		out.LagSeconds = int64(now.Sub(ds.Oldest) / time.Second)
	}
	w := s.recheck
	w.mu.Lock()
	defer w.mu.Unlock()
	out.LeaseHeld = w.lease.Token != 0
	names := make([]string, 0, len(s.cfg.Sources))
	for name := range s.cfg.Sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var gs GuardStatus
		if g := w.guards[name]; g != nil {
			gs.Checks, gs.Invalid = g.guard.Counts(now)
			gs.DayChecks, gs.DayInvalid = g.guard.DayCounts(now)
			gs.Tripped, gs.Warm = g.guard.Tripped(now) || g.alerted && !g.guard.Clear(now), g.guard.Warm(now)
		}
		out.Guards[name] = gs
	}
	return out, nil
}

package store

import (
	"context"
	"time"
)

// QuotaDelta is one installation's requests admitted in one fixed quota
// window by one instance since its last sync.
type QuotaDelta struct {
	LicenseID      string
	InstallationID string
	// Window is the window's start; Period its length.
	Window time.Time
	Period time.Duration
	// N is what to add (0: only read the total).
	N int64
}

// QuotaCounter is implemented by stores that keep the gate's quota
// counters shared between instances (both backends). The gateway counts
// in-process without one.
type QuotaCounter interface {
	// AddQuota atomically adds each delta to its installation's counter
	// for its window and returns the totals after the additions, in the
	// order of deltas: what every instance has added. A window's counter
	// goes some time after the window ends.
	AddQuota(ctx context.Context, deltas []QuotaDelta) ([]int64, error)
}

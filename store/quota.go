package store

import (
	"time"
)

// QuotaDelta is one installation's requests admitted in one fixed quota
// window by one instance since its last sync: what Store.AddQuota adds to
// the counter every instance shares.
type QuotaDelta struct {
	LicenseID      string
	InstallationID string
	// Window is the window's start; Period its length.
	Window time.Time
	Period time.Duration
	// N is what to add (0: only read the total).
	N int64
}

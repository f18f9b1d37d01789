package store

import (
	"context"
	"errors"
	"time"
)

// Scheduler is what the background recheck needs beyond licence states
// (SPEC section 7): the due index, claimed atomically, and leases with
// fencing tokens, so one worker runs across instances and a paused old
// holder cannot overwrite the new holder's results.
//
// Both backends keep the due index ordered by NextCheckAt (a bbolt bucket
// with time-sorted keys; a Redis sorted set): claiming one due licence is
// O(log n) and nothing here loads all licences.
type Scheduler interface {
	// ClaimDue returns up to limit ids of licences due at now (NextCheckAt
	// set and not after now), earliest first, and in the same atomic step
	// moves their index entries to now+claimFor, so no other caller claims
	// them again before then. The worker that claimed a licence writes its
	// real NextCheckAt with the result; one that dies meanwhile leaves the
	// licence due again once claimFor has passed.
	ClaimDue(ctx context.Context, now time.Time, limit int, claimFor time.Duration) ([]string, error)
	// AskCheck queues a licence for a check now (a store's webhook, SPEC
	// section 7) and announces it on the change feed (Change.Asked). The
	// ask stays queued, across restarts, until DoneAsk removes it after
	// the check: a worker that dies between the two leaves it queued. A
	// licence asked for again keeps one entry, at the later time.
	AskCheck(ctx context.Context, licenseID string, at time.Time) error
	// Asked returns up to limit queued asks, oldest first.
	Asked(ctx context.Context, limit int) ([]Ask, error)
	// DoneAsk removes a licence's ask unless it was asked for again after
	// at (its Ask.At): that later ask is still to be served.
	DoneAsk(ctx context.Context, licenseID string, at time.Time) error
	// DueStats counts the due index at now.
	DueStats(ctx context.Context, now time.Time) (DueStats, error)
	// NextDue returns the earliest NextCheckAt in the due index (zero when
	// it is empty), so the worker sleeps until then: O(log n), no count.
	NextDue(ctx context.Context) (time.Time, error)

	// AcquireLease takes the lease called name for holder until now+ttl,
	// when it is free, expired or released, with a fencing token one above
	// the last one the lease ever had; a holder that already holds it
	// keeps its token and has it extended. A lease another holder holds
	// yields ErrLeaseHeld together with the current holder's Lease.
	// Tokens strictly increase across holders and never repeat, so a
	// token orders every holder's writes. now is the caller's clock:
	// instances sharing a store must agree on time within a fraction of
	// ttl.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)
	// RenewLease extends a held lease to now+ttl. A lease that has
	// expired, was released or is held with another token yields
	// ErrLeaseLost: the caller must stop writing under its token and
	// acquire the lease again.
	RenewLease(ctx context.Context, l Lease, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease gives up a held lease at once, so another holder need
	// not wait for it to expire; releasing a lease no longer held is a
	// no-op. The token count is kept.
	ReleaseLease(ctx context.Context, l Lease) error
}

// Lease is a holder's claim on a named piece of work until Expires.
type Lease struct {
	Name    string    `json:"name"`
	Holder  string    `json:"holder"`
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
}

// DueStats describes the due index.
type DueStats struct {
	// Scheduled counts licences in the index (every licence with a
	// NextCheckAt).
	Scheduled int64 `json:"scheduled"`
	// Due counts those due at the time asked (on the embedded store at
	// most DueCountCap: the count walks the due part of the index).
	Due int64 `json:"due_now"`
	// Oldest is the earliest NextCheckAt in the index (zero: empty).
	Oldest time.Time `json:"oldest,omitempty"`
}

// DueCountCap bounds the due count a backend may have to walk.
const DueCountCap = 100_000

// Errors of leases and fenced writes.
var (
	// ErrLeaseHeld means another holder holds the lease.
	ErrLeaseHeld = errors.New("lease held by another holder")
	// ErrLeaseLost means a lease is no longer held by the caller.
	ErrLeaseLost = errors.New("lease no longer held")
	// ErrFenced means a write made under a lease's token was refused:
	// the licence was written under a later holder's token already.
	ErrFenced = errors.New("write fenced off: the licence was written under a later lease")
)

// UpdateFunc is the decision UpdateLicense applies.
type UpdateFunc = func(*LicenseState) (*LicenseState, error)

// Fenced guards an UpdateLicense decision with a lease's fencing token:
// when the licence was written under a higher token (License.Fence), the
// write is refused with ErrFenced before fn runs; otherwise what fn writes
// records token as the highest seen. Since the fence lives in the licence's
// own record, the check is part of the backend's atomic update (bbolt's
// writer lock, Redis WATCH/MULTI on the licence's one key), on Cluster too.
// Token 0 is a write under no lease (an author's action): it is neither
// checked nor recorded.
func Fenced(token int64, fn UpdateFunc) UpdateFunc {
	return func(st *LicenseState) (*LicenseState, error) {
		if token > 0 && st.License != nil && st.License.Fence > token {
			return nil, ErrFenced
		}
		next, err := fn(st)
		if err != nil || next == nil || next.License == nil {
			return next, err
		}
		if token > next.License.Fence {
			next.License.Fence = token
		}
		return next, nil
	}
}

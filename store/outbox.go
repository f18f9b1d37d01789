package store

import (
	"context"
	"errors"
	"time"
)

// Outbox entry statuses.
const (
	OutboxPending   = "pending"
	OutboxDelivered = "delivered"
	OutboxFailed    = "failed"
)

// OutboxEntry is one event waiting for delivery (webhooks, Caddy events),
// written with its audit entry in the same transaction as the change it
// announces. Entries of one licence form a queue: only the oldest pending
// one is claimable, so a licence's events are delivered in order.
type OutboxEntry struct {
	// ID is assigned by the store and stable: it is the webhook-id of every
	// attempt.
	ID string `json:"id"`
	// Event is the audited change (its ID is the audit entry's when the
	// store knows it).
	Event  AuditEvent `json:"event"`
	Status string     `json:"status"`
	// Attempts counts the delivery rounds made so far.
	Attempts int `json:"attempts,omitempty"`
	// NextAttemptAt is when a pending entry is due.
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// ClaimedUntil and Claim are a worker's claim: until then no other
	// worker claims the entry, and only a settle with the same Claim is
	// written.
	ClaimedUntil time.Time `json:"claimed_until,omitempty"`
	Claim        string    `json:"claim,omitempty"`
	// Targets is the delivery worker's per-endpoint progress (endpoint id
	// -> status), so an endpoint that has the event is not sent it again
	// while another is retried. The id is derived from the endpoint's URL,
	// never the URL itself: a URL may carry a token.
	Targets map[string]string `json:"targets,omitempty"`
	// Emitted is set once the event was emitted as a Caddy event, so an
	// admin retry (which starts the attempts over) does not emit it again.
	Emitted   bool      `json:"emitted,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// DoneAt is when the entry was delivered or failed for good.
	DoneAt time.Time `json:"done_at,omitempty"`
}

// OutboxQuery pages through outbox entries of one status (all when empty).
// Both stores list the pending and the failed entries from an index of
// that status, so a page of them costs the page, however many delivered
// entries the outbox keeps; all entries, or the delivered ones, are read
// from the whole outbox.
type OutboxQuery struct {
	Status string
	After  string // cursor: the last entry already seen
	Limit  int
}

// ErrNotClaimed means a settle came with a claim that is no longer the
// entry's (it expired and another worker claimed the entry).
var ErrNotClaimed = errors.New("outbox entry not claimed by this worker")

// Outbox is the durable queue of events to deliver. Entries are written by
// UpdateLicense (a state's Events) and AppendEvents; a delivery worker on
// any instance claims, delivers and settles them.
type Outbox interface {
	// AppendEvents writes events that belong to no licence (key rotation,
	// a tripped guard, a failing credential) as audit and outbox entries in
	// one transaction.
	AppendEvents(ctx context.Context, evs []AuditEvent) error
	// ClaimOutbox claims up to limit entries due at now for lease: for each
	// licence (and for the events of no licence) only its oldest pending
	// entry, and only when no claim on it is live. A claimed entry not
	// settled within lease is claimable again (at-least-once).
	ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxEntry, error)
	// SettleOutbox writes back a claimed entry's outcome: pending with a
	// new NextAttemptAt, delivered or failed. ErrNotClaimed when e.Claim is
	// no longer the entry's.
	SettleOutbox(ctx context.Context, e OutboxEntry) error
	// OutboxEntries pages through entries; a cursor the store did not issue
	// yields ErrBadCursor. The second result is the next page's cursor, ""
	// at the end.
	OutboxEntries(ctx context.Context, q OutboxQuery) ([]OutboxEntry, string, error)
	// RetryOutbox makes a failed entry pending again, due at now, at the
	// end of its licence's queue. ErrNotFound when there is no failed
	// entry with that id.
	RetryOutbox(ctx context.Context, id string, now time.Time) error
	// OutboxPending counts the pending entries (claimed or not): the
	// deliveries waiting, for metrics and the health endpoint. It is
	// cheap enough for every scrape: it does not read the entries.
	OutboxPending(ctx context.Context) (int64, error)
	// TrimOutbox deletes up to limit delivered entries done before before;
	// TrimAudit up to limit audit entries older than before. Both return
	// how many they deleted, so callers loop in small batches.
	TrimOutbox(ctx context.Context, before time.Time, limit int) (int, error)
	TrimAudit(ctx context.Context, before time.Time, limit int) (int, error)
}

// OutboxCounter counts the failed outbox entries, for the author
// console's overview. Both stores implement it; callers reach it with a
// type assertion on the Store.
type OutboxCounter interface {
	// OutboxFailed counts the entries that failed for good and wait for
	// an admin retry, without reading them: O(1) on Redis, a walk of the
	// failed index's pages (not its entries) on the embedded store.
	OutboxFailed(ctx context.Context) (int64, error)
}

package gateway

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Event is one audited state change. Recorded through Service.event, it
// becomes an audit entry and an outbox entry (a webhook per endpoint and a
// Caddy event licensegate.<type>) written in the same store transaction as
// the change itself (DESIGN.md "Events"). It holds ids and facts, never a
// purchase code, a token or a secret. Action is the event type
// (store.AuditActions, SPEC section 10).
type Event = store.AuditEvent

// event records ev as part of a change, the one way every state change is
// audited and announced:
//
//   - with st, inside an UpdateLicense fn, on the state fn returns: ev is
//     written with that state, atomically, or not at all (an fn that runs
//     again starts from a fresh state, so nothing is recorded twice);
//   - with st nil, for an event of no licence (keys.rotated,
//     recheck.guard_tripped, source.credential_failing), after the change it
//     follows: audit and outbox entries are written together at once, and
//     a failure is logged (the change stands).
//
// ev.At defaults to now and ev.LicenseID to st's licence.
func (s *Service) event(ctx context.Context, st *store.LicenseState, ev Event) {
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	if st != nil {
		recordEvent(st, ev)
		return
	}
	if err := s.cfg.Store.AppendEvents(context.WithoutCancel(ctx), []store.AuditEvent{ev}); err != nil {
		s.log.Error("recording event", zap.String("type", ev.Action), zap.Error(err))
	}
}

// recordEvent is Service.event with a state, for decisions that have no
// service (applyCheck): ev rides on st's write. ev.At must be set.
func recordEvent(st *store.LicenseState, ev Event) {
	if st.License != nil {
		if ev.LicenseID == "" {
			ev.LicenseID = st.License.ID
		}
		if ev.Product == "" {
			ev.Product = st.License.Product
		}
		if ev.Source == "" {
			ev.Source = st.License.Source
		}
	}
	st.Events = append(st.Events, ev)
}

// licenseEvents returns the events a licence record's change from prev to
// next makes (a verification or a recheck): license.expired when it became
// expired, license.renewed when its expiry or support end moved later,
// license.flagged when it became flagged, license.reinstated when a
// flagged licence is active again. prev nil (a new licence) makes none.
func licenseEvents(prev, next *store.License, actor string) []Event {
	if prev == nil || next == nil {
		return nil
	}
	var evs []Event
	ev := func(action string) Event {
		return Event{Actor: actor, Action: action, LicenseID: next.ID, Product: next.Product, Source: next.Source}
	}
	if next.Status != prev.Status {
		switch next.Status {
		case store.LicenseExpired:
			evs = append(evs, ev(store.AuditLicenseExpired))
		case store.LicenseFlagged:
			evs = append(evs, ev(store.AuditLicenseFlagged))
		case store.LicenseActive:
			evs = append(evs, ev(store.AuditLicenseReinstated))
		}
	}
	if later(prev.ExpiresAt, next.ExpiresAt) || later(prev.SupportUntil, next.SupportUntil) {
		e := ev(store.AuditLicenseRenewed)
		if next.ExpiresAt != nil {
			e.Detail = "expires_at " + next.ExpiresAt.UTC().Format(time.RFC3339)
		}
		if next.SupportUntil != nil {
			if e.Detail != "" {
				e.Detail += ", "
			}
			e.Detail += "support_until " + next.SupportUntil.UTC().Format(time.RFC3339)
		}
		evs = append(evs, e)
	}
	return evs
}

// later reports whether b is a later end than a (nil is no end: a licence
// that stops expiring is renewed too).
func later(a, b *time.Time) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	default:
		return b.After(*a)
	}
}

// maxDeliveriesLimit bounds one page of webhook deliveries.
const maxDeliveriesLimit = 500

// Deliveries pages through the outbox's entries of one status (pending,
// delivered, failed; all when empty), oldest first.
func (s *Service) Deliveries(ctx context.Context, q store.OutboxQuery) ([]store.OutboxEntry, string, error) {
	switch q.Status {
	case "", store.OutboxPending, store.OutboxDelivered, store.OutboxFailed:
	default:
		return nil, "", Validation("status", "is not one of pending, delivered, failed")
	}
	q.Limit = clamp(q.Limit, 100, maxDeliveriesLimit)
	es, next, err := s.cfg.Store.OutboxEntries(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", Validation("cursor", "is not a cursor this gateway issued")
	}
	if err != nil {
		return nil, "", storeUnavailable(err)
	}
	if es == nil {
		es = []store.OutboxEntry{}
	}
	for i := range es {
		es[i].Claim = "" // a worker's, not the author's
	}
	return es, next, nil
}

// RetryDelivery makes a failed delivery pending again, due now.
func (s *Service) RetryDelivery(ctx context.Context, id string) error {
	err := s.cfg.Store.RetryOutbox(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return storeUnavailable(err)
	}
	return nil
}

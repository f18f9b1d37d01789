package gateway

import (
	"context"
	"errors"

	"github.com/licensegate/licensegate/store"
)

// Actors of audit events.
const (
	ActorAdmin     = "admin"
	ActorInstaller = "installer"
	ActorGateway   = "gateway"
)

// ConsoleActor is an author signed in to the console as user (the
// authentication handler's user id), as the audit log names them: an
// admin, and which one. A webhook consumer matching "admin" by prefix
// sees the console's changes as the admin API's.
func ConsoleActor(user string) string { return ActorAdmin + ":" + user }

// maxAuditLimit bounds one page of the audit log.
const maxAuditLimit = 1000

// Audit pages through the audit log.
func (s *Service) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, string, error) {
	q.Limit = clamp(q.Limit, 100, maxAuditLimit)
	evs, err := s.cfg.Store.Audit(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", Validation("cursor", "is not a cursor this gateway issued")
	}
	if err != nil {
		return nil, "", storeUnavailable(err)
	}
	if evs == nil {
		evs = []store.AuditEvent{}
	}
	next := ""
	if len(evs) == q.Limit {
		next = evs[len(evs)-1].ID
	}
	return evs, next, nil
}

// Events are audited by Service.event (events.go), with the change.

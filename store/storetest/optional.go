package storetest

import (
	"context"

	"github.com/licensegate/licensegate/store"
)

// optionalCalls calls each method of the optional interfaces s
// implements (the author console's reads), so the outage and
// gone-caller tests cover them as they cover Store's.
func optionalCalls(s store.Store) map[string]func(ctx context.Context) error {
	calls := map[string]func(ctx context.Context) error{}
	if p, ok := s.(store.TermPager); ok {
		term := store.QueueTerm(store.QueueFlagged)
		calls["LookupAfter"] = func(ctx context.Context) error { _, err := p.LookupAfter(ctx, term, "", 10); return err }
		calls["CountTerm"] = func(ctx context.Context) error { _, err := p.CountTerm(ctx, term); return err }
	}
	if a, ok := s.(store.AuditByLicense); ok {
		calls["LicenseAudit"] = func(ctx context.Context) error { _, err := a.LicenseAudit(ctx, "lic_1", 10); return err }
	}
	if c, ok := s.(store.StatusCounter); ok {
		calls["StatusCounts"] = func(ctx context.Context) error { _, _, _, err := c.StatusCounts(ctx); return err }
	}
	if c, ok := s.(store.OutboxCounter); ok {
		calls["OutboxFailed"] = func(ctx context.Context) error { _, err := c.OutboxFailed(ctx); return err }
	}
	return calls
}

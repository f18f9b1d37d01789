package gateway

import (
	"context"
	"slices"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// OverviewDays is how many days the console's charts span.
const OverviewDays = 30

// Overview is the author console's first page (SPEC section 13): what
// needs the author, and how the gateway is doing. Every part is read from
// something the store or the process keeps ready (counters, indexes, a
// source's own state), never by walking the licences, so the page costs
// the same at ten licences or ten million. A part the store cannot answer
// is left empty (nil) rather than failing the page.
type Overview struct {
	Sources []SourceStatus
	Backlog Backlog
	// FailedDeliveries counts failed webhook deliveries: the store's count
	// (store.OutboxCounter), else up to maxOverviewFailed listed
	// (FailedMore: there are more).
	FailedDeliveries int
	FailedMore       bool
	// Recheck is the due index and the guards; nil when the store did not
	// answer.
	Recheck *RecheckStats
	// From is the first day of Daily: each series' counts per day, oldest
	// first, OverviewDays of them.
	From  time.Time
	Daily map[string][]int64
	// Licenses and Installations count by status, Locked the locked
	// licences: the counts the store keeps in each licence's write
	// (store.StatusCounter). Nil when the store keeps none.
	Licenses, Installations map[string]int64
	Locked                  int64
}

// SourceStatus is one source's health.
type SourceStatus struct {
	Name string
	// Local sources (a key file, the keygen of our own) call nobody:
	// they have no breaker or budget.
	Local bool
	upstreams.SourceHealth
}

// maxOverviewFailed bounds the failed deliveries the overview counts: past
// it, "100+" says enough, and the deliveries page lists them.
const maxOverviewFailed = 100

// Overview gathers the console's overview.
func (s *Service) Overview(ctx context.Context) (*Overview, error) {
	o := &Overview{Sources: s.SourceStatuses(), Backlog: s.Backlog(ctx)}
	// This instance's counts of the last minute first (the worker writes
	// them once a minute): the author who just activated a copy sees it.
	// A failure leaves them for the worker; the read below tells.
	_ = s.FlushDaily(ctx)
	var err error
	if o.From, o.Daily, err = s.DailyCounts(ctx, OverviewDays); err != nil {
		return nil, err
	}
	if rs, err := s.RecheckStatus(ctx); err == nil {
		o.Recheck = rs
	}
	if sc, ok := s.cfg.Store.(store.StatusCounter); ok {
		if o.Licenses, o.Installations, o.Locked, err = sc.StatusCounts(ctx); err != nil {
			return nil, storeUnavailable(err)
		}
	}
	if oc, ok := s.cfg.Store.(store.OutboxCounter); ok {
		n, err := oc.OutboxFailed(ctx)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		o.FailedDeliveries = int(n)
		return o, nil
	}
	failed, next, err := s.Deliveries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: maxOverviewFailed})
	if err != nil {
		return nil, err
	}
	o.FailedDeliveries, o.FailedMore = len(failed), next != ""
	return o, nil
}

// SourceStatuses lists each configured source's health, by name.
func (s *Service) SourceStatuses() []SourceStatus {
	out := make([]SourceStatus, 0, len(s.cfg.Sources))
	for _, name := range s.sourceNames() {
		src := s.cfg.Sources[name]
		st := SourceStatus{Name: name, Local: isLocal(src)}
		if h, ok := src.(interface{ Health() upstreams.SourceHealth }); ok && !st.Local {
			st.SourceHealth = h.Health()
		}
		out = append(out, st)
	}
	return out
}

// GateCodes lists the codes the gate's decisions are counted by, admitted
// first, then the refusals, then "other": the order a chart shows them.
func GateCodes() []string {
	return append(slices.Clone(gateOutcomes[:]), "other")
}

// Products lists the configured products, in configuration order.
func (s *Service) Products() []string { return slices.Clone(s.cfg.ProductOrder) }

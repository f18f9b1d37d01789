package gateway

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// Quotas (SPEC section 6, step 4): a gate's per-installation request
// budget per fixed window (aligned to the Unix epoch, so a day runs from
// 00:00 UTC). Each instance counts in-process, in a sharded map, and the
// quota_sync worker adds what it admitted to the store's shared counter
// once per QuotaSyncInterval (default 1s), in one batch, learning what
// the other instances added. So one instance is exact, and across N
// instances the overshoot is at most what they admit in one sync
// interval, each counting on the others' count it last learned (never
// more than (N-1)*n in one window). A store that
// cannot be reached never refuses a request: counting goes on locally and
// the next sync adds it all. Gates with the same period share an
// installation's count; each refuses at its own limit.

// DefaultQuotaSyncInterval is how often admitted requests are added to
// the store's counters.
const DefaultQuotaSyncInterval = time.Second

// Quota is a gate's budget: Limit requests per installation per Period.
type Quota struct {
	Limit  int64
	Period time.Duration
}

// QuotaState is where an admitted request left its installation's
// budget, for the RateLimit fields. Limit is 0 on a gate without quota.
type QuotaState struct {
	Limit     int64
	Period    time.Duration
	Remaining int64
	// Reset is the time left in the window.
	Reset time.Duration
}

// WithQuota gives the gate a per-installation quota.
func WithQuota(q Quota) GateOption {
	return func(g *Gate) {
		if q.Limit > 0 && q.Period > 0 {
			g.quota, g.counter = q, g.svc.quotaCounter(q.Period)
		}
	}
}

// WithTypeQuotas gives the gate a per-installation quota for licences of
// each named type (SPEC section 14: quota regular=1000/d
// extended=10000/d); other types have WithQuota's, if any.
func WithTypeQuotas(byType map[string]Quota) GateOption {
	return func(g *Gate) {
		for typ, q := range byType {
			if q.Limit > 0 && q.Period > 0 {
				if g.typeQuota == nil {
					g.typeQuota = map[string]typeQuota{}
				}
				g.typeQuota[typ] = typeQuota{Quota: q, counter: g.svc.quotaCounter(q.Period)}
			}
		}
	}
}

// typeQuota is one licence type's quota and its period's counter.
type typeQuota struct {
	Quota
	counter *quotaCounter
}

// quotaFor is the quota of a grant's licence type, and its counter (nil:
// none applies).
func (g *Gate) quotaFor(grant *Grant) (Quota, *quotaCounter) {
	if tq, ok := g.typeQuota[grant.Type]; ok {
		return tq.Quota, tq.counter
	}
	return g.quota, g.counter
}

const quotaShards = 32

type quotaEntry struct {
	license string
	window  int64 // window start, unix ns
	local   int64 // admitted here in the window
	synced  int64 // of local, added to the store
	remote  int64 // what the other instances added, as last learned
	used    bool  // asked since the last sync
}

type quotaShard struct {
	mu sync.Mutex
	m  map[string]quotaEntry // by installation id
}

// quotaCounter counts one period's windows for every installation.
type quotaCounter struct {
	period time.Duration
	shards [quotaShards]quotaShard
}

// quotaCounter returns the service's counter for period, made on first
// use.
func (s *Service) quotaCounter(period time.Duration) *quotaCounter {
	s.quotaMu.Lock()
	defer s.quotaMu.Unlock()
	for _, c := range s.quotas {
		if c.period == period {
			return c
		}
	}
	c := &quotaCounter{period: period}
	for i := range c.shards {
		c.shards[i].m = map[string]quotaEntry{}
	}
	s.quotas = append(s.quotas, c)
	return c
}

func (c *quotaCounter) shard(id string) *quotaShard { return &c.shards[hashID(id)%quotaShards] }

// take admits one request of the installation against limit, or refuses
// it; either way it returns the budget left and the time to the window's
// end. It allocates nothing once the installation has an entry.
func (c *quotaCounter) take(installation, license string, limit int64, now time.Time) (remaining int64, reset time.Duration, ok bool) {
	start := now.Truncate(c.period)
	reset = start.Add(c.period).Sub(now)
	sh := c.shard(installation)
	sh.mu.Lock()
	e, found := sh.m[installation]
	if !found || e.window != start.UnixNano() {
		e = quotaEntry{license: license, window: start.UnixNano()}
	}
	e.used = true
	count := e.local + e.remote
	if count >= limit {
		sh.m[installation] = e
		sh.mu.Unlock()
		return 0, reset, false
	}
	e.local++
	sh.m[installation] = e
	sh.mu.Unlock()
	return limit - count - 1, reset, true
}

// quotaSubject is whose budget a request counts against: its installation,
// or for a free install (local or staging, holding no slot) all of its
// licence's free installs together, so deactivating one and activating
// another *.test name does not start a fresh budget (issue 20, N4).
func (g *Gate) quotaSubject(grant *Grant) string {
	if g.svc.freeInstall(grant) {
		return "free:" + grant.LicenseID
	}
	return grant.InstallationID
}

// freeInstall reports whether the grant's installation is a free one.
func (s *Service) freeInstall(grant *Grant) bool {
	if grant.Class == string(policy.ClassProduction) {
		return false
	}
	p := s.product(grant.Product)
	return p != nil && !p.Rules.HoldsSlot(policy.InstallClass(grant.Class))
}

// admitFreeQuota applies the product's free_quota to a free install's
// request: every free install of the licence, at every gate, together.
func (g *Gate) admitFreeQuota(grant *Grant, now time.Time) error {
	if grant.Class == string(policy.ClassProduction) {
		return nil // the common case: no lookup
	}
	c := g.free[grant.Product]
	if c == nil || !g.svc.freeInstall(grant) {
		return nil
	}
	q := g.svc.product(grant.Product).FreeQuota
	_, reset, ok := c.take("freeq:"+grant.LicenseID, grant.LicenseID, q.Limit, now)
	if !ok {
		return &Error{Code: CodeQuotaExceeded, RetryAfter: reset,
			Detail: "This licence's local and staging installations have used their " + strconv.FormatInt(q.Limit, 10) +
				" requests of this window; try again after it ends."}
	}
	return nil
}

// admitQuota applies the gate's quota for the grant's licence type, if
// any, to a grant.
func (g *Gate) admitQuota(grant *Grant, now time.Time) error {
	q, counter := g.quotaFor(grant)
	if counter == nil {
		return nil
	}
	remaining, reset, ok := counter.take(g.quotaSubject(grant), grant.LicenseID, q.Limit, now)
	grant.Quota = QuotaState{Limit: q.Limit, Period: q.Period, Remaining: remaining, Reset: reset}
	if !ok {
		return &Error{Code: CodeQuotaExceeded, RetryAfter: reset,
			Detail: "This installation has used its " + strconv.FormatInt(q.Limit, 10) + " requests of this window; try again after it ends."}
	}
	return nil
}

// quotaSyncInterval is the configured interval, or the default.
func (s *Service) quotaSyncInterval() time.Duration {
	if s.cfg.QuotaSyncInterval > 0 {
		return s.cfg.QuotaSyncInterval
	}
	return DefaultQuotaSyncInterval
}

// SyncQuota adds the requests admitted here since the last sync to the
// store's counters, in one batch, and learns the other instances' counts
// for the current windows of the installations asked since the last sync
// (an idle one costs the store nothing). Entries of ended windows are
// forgotten. A failure leaves the counts to the next sync.
func (s *Service) SyncQuota(ctx context.Context) error {
	s.quotaMu.Lock()
	counters := slices.Clone(s.quotas)
	s.quotaMu.Unlock()
	now := s.now()
	var deltas []store.QuotaDelta
	var owners []*quotaCounter
	for _, c := range counters {
		current := now.Truncate(c.period).UnixNano()
		for i := range c.shards {
			sh := &c.shards[i]
			sh.mu.Lock()
			for id, e := range sh.m {
				if e.window != current {
					delete(sh.m, id) // an ended window's unsent count no longer matters
					continue
				}
				if !e.used && e.local == e.synced {
					continue // nothing asked, nothing unsent (a failed sync's count is)
				}
				e.used = false
				sh.m[id] = e
				deltas = append(deltas, store.QuotaDelta{LicenseID: e.license, InstallationID: id,
					Window: time.Unix(0, e.window).UTC(), Period: c.period, N: e.local - e.synced})
				owners = append(owners, c)
			}
			sh.mu.Unlock()
		}
	}
	if len(deltas) == 0 {
		return nil
	}
	totals, err := s.cfg.Store.AddQuota(ctx, deltas)
	if err != nil {
		return err
	}
	for i, d := range deltas {
		sh := owners[i].shard(d.InstallationID)
		sh.mu.Lock()
		if e, found := sh.m[d.InstallationID]; found && e.window == d.Window.UnixNano() {
			e.synced += d.N
			e.remote = max(totals[i]-e.synced, 0)
			sh.m[d.InstallationID] = e
		}
		sh.mu.Unlock()
	}
	return nil
}

// syncQuotaPeriodically is the quota_sync worker.
func (s *Service) syncQuotaPeriodically(ctx context.Context) error {
	return every(ctx, s.quotaSyncInterval(), func(ctx context.Context) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := s.SyncQuota(sctx); err != nil && ctx.Err() == nil {
			if ce := s.log.Check(zap.WarnLevel, "syncing quota counters; counting goes on locally"); ce != nil {
				ce.Write(zap.Error(err))
			}
		}
	})
}

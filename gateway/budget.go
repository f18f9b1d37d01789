package gateway

import (
	"sync"
	"time"

	"github.com/licensegate/licensegate/internal/bucket"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

// FailureBudget bounds, per source, the activations of keys the store
// does not know that may be put to the source without being vindicated
// (SPEC section 4): a flood of random well-formed keys, spread over more
// client addresses than the per-IP limits catch, is answered 429
// rate_limited before it spends the marketplace's rate budget that honest
// installers need. A call is reserved before the source is asked, so a
// concurrent burst cannot overdraw it, and given back when the key is
// valid; a definitive "no" or an unknown outcome keeps it spent. Local
// sources (the author's key file) cost nothing to ask and are not
// budgeted. Safe for concurrent use.
//
// The budget is shared fairly (issue 20, N3): half of it is open to
// every client, the other half is a reserve that only client networks
// (IPv4 /24, IPv6 /48) without a recent failure may draw on, one call
// each per failureMemory unless vindicated. A flood from a dozen networks
// empties the open half and marks its networks at their first failure;
// an honest installer's first activation still finds the reserve.
type FailureBudget struct {
	open, reserve upstreams.Rate
	now           func() time.Time

	mu      sync.Mutex
	sources map[string]*sourceBudget // by source name: bounded by the configuration
}

// sourceBudget is one source's two buckets and the networks they saw.
type sourceBudget struct {
	open, reserve *bucket.Bucket
	networks      map[string]networkMark // at most maxBudgetNetworks
}

// networkMark is when a client network last failed, and last drew on the
// reserve.
type networkMark struct{ failedAt, reserveAt time.Time }

// The reserve's memory of networks.
const (
	failureMemory     = 10 * time.Minute
	maxBudgetNetworks = 10_000
)

// NewFailureBudget returns a budget of r per source (burst r.Calls), half
// open and half reserve, on the clock now (nil: time.Now).
func NewFailureBudget(r upstreams.Rate, now func() time.Time) *FailureBudget {
	if now == nil {
		now = time.Now
	}
	open := upstreams.Rate{Calls: max(1, (r.Calls+1)/2), Period: r.Period}
	reserve := upstreams.Rate{Calls: max(1, r.Calls-open.Calls), Period: r.Period}
	return &FailureBudget{open: open, reserve: reserve, now: now, sources: map[string]*sourceBudget{}}
}

// budgetTicket is a reserved call, settled once the source answered.
type budgetTicket struct {
	b               *FailureBudget
	source, network string
	fromReserve     bool
}

// take reserves a call of source's budget for a client at clientIP, or
// says how long until one is free. A nil budget allows everything (a nil
// ticket, whose settle does nothing).
func (b *FailureBudget) take(source, clientIP string) (*budgetTicket, time.Duration) {
	if b == nil {
		return nil, 0
	}
	network := policy.ClientNetwork(clientIP)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	sb := b.source(source)
	ok, wait := sb.open.Take(now)
	if ok {
		return &budgetTicket{b: b, source: source, network: network}, 0
	}
	if !sb.mayDrawReserve(network, now) {
		return nil, max(wait, time.Millisecond)
	}
	ok, rwait := sb.reserve.Take(now)
	if !ok {
		return nil, max(min(wait, rwait), time.Millisecond)
	}
	m := sb.networks[network]
	m.reserveAt = now
	sb.networks[network] = m
	return &budgetTicket{b: b, source: source, network: network, fromReserve: true}, 0
}

func (b *FailureBudget) source(name string) *sourceBudget {
	sb, ok := b.sources[name]
	if !ok {
		sb = &sourceBudget{open: bucket.New(b.open.Every(), b.open.Calls), reserve: bucket.New(b.reserve.Every(), b.reserve.Calls),
			networks: map[string]networkMark{}}
		b.sources[name] = sb
	}
	return sb
}

// mayDrawReserve reports whether network may take a reserve call at now:
// a known network, without a failure or a reserve call within
// failureMemory, while there is room to remember it.
func (sb *sourceBudget) mayDrawReserve(network string, now time.Time) bool {
	if network == "" {
		return false
	}
	m, seen := sb.networks[network]
	if seen {
		return now.Sub(m.failedAt) >= failureMemory && now.Sub(m.reserveAt) >= failureMemory
	}
	if len(sb.networks) >= maxBudgetNetworks {
		sb.forget(now)
	}
	return len(sb.networks) < maxBudgetNetworks
}

// forget drops the networks whose marks are past failureMemory.
func (sb *sourceBudget) forget(now time.Time) {
	for n, m := range sb.networks {
		if now.Sub(m.failedAt) >= failureMemory && now.Sub(m.reserveAt) >= failureMemory {
			delete(sb.networks, n)
		}
	}
}

// settle ends a reserved call: a vindicated key gives it back (and the
// network may draw on the reserve again); otherwise it stays spent and
// the network is marked as failed.
func (t *budgetTicket) settle(vindicated bool) {
	if t == nil {
		return
	}
	b := t.b
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	sb := b.source(t.source)
	m, seen := sb.networks[t.network]
	switch {
	case vindicated && t.fromReserve:
		sb.reserve.Refund(now)
		if seen {
			m.reserveAt = time.Time{}
			sb.networks[t.network] = m
		}
	case vindicated:
		sb.open.Refund(now)
	case t.network != "" && (seen || len(sb.networks) < maxBudgetNetworks):
		m.failedAt = now
		sb.networks[t.network] = m
	}
}

package gateway

import (
	"context"
	"sort"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// healthPingTimeout bounds the health check's store ping.
const healthPingTimeout = 2 * time.Second

// Health is the service's readiness (SPEC section 8, GET health). It is
// serving when the store answers and the signing keys are loaded; an open
// breaker degrades activations from that source only, so it is reported
// without failing the check.
type Health struct {
	Serving bool `json:"serving"`
	// Failing names the parts that stop the service serving ("store",
	// "signing_keys"); Degraded the sources whose breaker is not closed.
	Failing  []string `json:"failing"`
	Degraded []string `json:"degraded"`
	Store    struct {
		Reachable bool   `json:"reachable"`
		Error     string `json:"error,omitempty"`
		// Persistence is how a Redis store survives a restart (aof, rdb,
		// aof+rdb, none, unknown); absent for the embedded store, which
		// is always on disk. "none" is listed in Degraded.
		Persistence string `json:"persistence,omitempty"`
	} `json:"store"`
	SigningKeys bool `json:"signing_keys_loaded"`
	// Sources maps each source to its breaker state (closed, open,
	// half_open; local sources have none and show "local").
	Sources map[string]string `json:"sources"`
	// Recheck is each source's recheck queue, null until the recheck
	// worker reports it; WebhookPending is the outbox's pending entries,
	// null when the store cannot say.
	Recheck        map[string]RecheckHealth `json:"recheck"`
	WebhookPending *int64                   `json:"webhook_pending"`
}

// RecheckHealth is one source's recheck queue in Health.
type RecheckHealth struct {
	Due        int64   `json:"due"`
	Backlog    int64   `json:"backlog"`
	LagSeconds float64 `json:"lag_seconds"`
}

// persistence asks a store whose durability is configured outside the
// gateway how it keeps data ("" for one that does not say).
func (s *Service) persistence(ctx context.Context) string {
	p, ok := s.cfg.Store.(store.Persistent)
	if !ok {
		return ""
	}
	v, err := p.Persistence(ctx)
	if err != nil {
		return store.PersistenceUnknown
	}
	return v
}

// Health checks the store with a bounded ping and reports the sources'
// breakers and the background backlogs.
func (s *Service) Health(ctx context.Context) Health {
	h := Health{Sources: map[string]string{}, Failing: []string{}, Degraded: []string{}}
	pctx, cancel := context.WithTimeout(ctx, healthPingTimeout)
	defer cancel()
	if err := s.cfg.Store.Ping(pctx); err != nil {
		h.Store.Error = err.Error()
		h.Failing = append(h.Failing, "store")
	} else {
		h.Store.Reachable = true
		h.Store.Persistence = s.persistence(pctx)
		if h.Store.Persistence == store.PersistenceNone {
			h.Degraded = append(h.Degraded, "store persistence")
		}
	}
	h.SigningKeys = s.ring.Loaded()
	if !h.SigningKeys {
		h.Failing = append(h.Failing, "signing_keys")
	}
	for name, src := range s.cfg.Sources {
		b, ok := src.(interface{ BreakerState() upstreams.BreakerState })
		if !ok || isLocal(src) {
			h.Sources[name] = "local"
			continue
		}
		st := b.BreakerState()
		h.Sources[name] = st.String()
		if st != upstreams.BreakerClosed {
			h.Degraded = append(h.Degraded, "source "+name)
		}
	}
	sort.Strings(h.Degraded)
	bl := s.Backlog(ctx)
	if bl.Recheck != nil {
		h.Recheck = make(map[string]RecheckHealth, len(bl.Recheck))
		for name, r := range bl.Recheck {
			h.Recheck[name] = RecheckHealth{Due: r.Due, Backlog: r.Backlog, LagSeconds: r.Lag.Seconds()}
		}
	}
	h.WebhookPending = bl.WebhookPending
	h.Serving = len(h.Failing) == 0
	return h
}

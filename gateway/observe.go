package gateway

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/licensegate/licensegate/upstreams"
)

// Observer is told what the service does, for metrics. Every label it is
// given is bounded (STYLE practice 8): a configured product or source, an
// endpoint, an outcome or a public error code; never a licence,
// installation, key or domain. Methods are called on request paths and
// must not block; the gate's admission calls GateDecision on every request,
// so it must not allocate either.
//
// The resilience layer reports through upstreams.Observer, which an
// Observer usually implements too; the status cache's counts are read
// from Service.CacheStats.
type Observer interface {
	// GateDecision counts one admission decision: code is OutcomeAdmitted
	// or the refusal's public code; product is the token's audience, or ""
	// before a token is verified.
	GateDecision(product, code string)
	// Exchange counts one installer request: endpoint is one of the
	// Endpoint constants, outcome OutcomeOK or the error's public code.
	Exchange(endpoint, outcome string, took time.Duration)
	// StoreError counts a store failure by operation (an endpoint, or
	// "status_read", "change_feed", "key_load").
	StoreError(op string)
	// RecheckOutcome counts one background recheck of a licence by its
	// source and outcome (the recheck worker reports it).
	RecheckOutcome(source, outcome string)
	// WebhookDelivery counts one webhook delivery attempt by outcome (the
	// webhook worker reports it).
	WebhookDelivery(outcome string)
	// StoreHook counts one store webhook received, by source and outcome
	// (one of the Hook* outcomes).
	StoreHook(source, outcome string)
}

// Backlog is the background work waiting, for metrics and the health
// endpoint. A nil map or pointer is not known: the worker that reports it
// is not running (or not built).
type Backlog struct {
	// Recheck is, by source, the licences due and overdue for a recheck
	// and how late the oldest is.
	Recheck map[string]RecheckBacklog
	// WebhookPending is how many outbox entries wait for delivery
	// (claimed or not); nil when the store cannot say.
	WebhookPending *int64
}

// RecheckBacklog is one source's recheck queue.
type RecheckBacklog struct {
	// Due counts the licences due now; Backlog every licence scheduled
	// for a recheck; Lag is how long the oldest due one has waited.
	Due, Backlog int64
	Lag          time.Duration
}

// Backlog returns the background work waiting. The recheck's queue is
// read from the store's due index (one entry, source "all": the index is
// not kept per source); it is unknown when no product is rechecked or the
// store cannot say. The webhook backlog is the store's count of pending
// outbox entries: every change writes its events there whether or not a
// webhook endpoint is configured (the delivery worker settles them, and
// emits the Caddy events, either way), so the outbox is always in use and
// the count is reported whenever the store answers.
func (s *Service) Backlog(ctx context.Context) Backlog {
	var bl Backlog
	// A scrape or a readiness probe must not hang on a hung store.
	ctx, cancel := context.WithTimeout(ctx, healthPingTimeout)
	defer cancel()
	if n, err := s.cfg.Store.OutboxPending(ctx); err == nil {
		bl.WebhookPending = &n
	}
	if !s.rechecks() {
		return bl
	}
	now := s.now()
	ds, err := s.cfg.Store.DueStats(ctx, now)
	if err != nil {
		return bl
	}
	rb := RecheckBacklog{Due: ds.Due, Backlog: ds.Scheduled}
	if !ds.Oldest.IsZero() && ds.Oldest.Before(now) {
		rb.Lag = now.Sub(ds.Oldest)
	}
	bl.Recheck = map[string]RecheckBacklog{"all": rb}
	return bl
}

// Endpoints and outcomes the service reports.
const (
	EndpointActivate   = "activate"
	EndpointRefresh    = "refresh"
	EndpointMove       = "move"
	EndpointDeactivate = "deactivate"
	EndpointAddons     = "addons"
	// EndpointStatusRefresh is status/refresh: a recheck a buyer or
	// product asked for.
	EndpointStatusRefresh = "status_refresh"

	OutcomeOK       = "ok"
	OutcomeAdmitted = "admitted"

	OpStatusRead = "status_read"
	OpChangeFeed = "change_feed"
	OpKeyLoad    = "key_load"
)

// NopObserver observes nothing: the default.
type NopObserver struct{}

func (NopObserver) GateDecision(string, string)            {}
func (NopObserver) Exchange(string, string, time.Duration) {}
func (NopObserver) StoreError(string)                      {}
func (NopObserver) RecheckOutcome(string, string)          {}
func (NopObserver) WebhookDelivery(string)                 {}
func (NopObserver) StoreHook(string, string)               {}
func (NopObserver) Call(string, string, time.Duration)     {}
func (NopObserver) BudgetWait(string, time.Duration, bool) {}

// tracerName is the instrumentation scope of the service's spans.
const tracerName = "github.com/licensegate/licensegate/gateway"

// observe starts an endpoint's span, when the request carries a recording
// one (Caddy's tracing handler put it in the context; without it the
// no-op provider costs nothing), and returns the function that ends it
// and counts the request by outcome.
func (s *Service) observe(ctx context.Context, endpoint string) (context.Context, func(error)) {
	start := s.now()
	var span trace.Span
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		ctx, span = parent.TracerProvider().Tracer(tracerName).Start(ctx, endpoint,
			trace.WithSpanKind(trace.SpanKindInternal))
	}
	return ctx, func(err error) {
		outcome := outcomeOf(err, OutcomeOK)
		if outcome == CodeStoreUnavailable {
			s.obs.StoreError(endpoint)
		}
		s.obs.Exchange(endpoint, outcome, s.now().Sub(start))
		if span != nil {
			span.SetAttributes(attribute.String("licensegate.outcome", outcome))
			if outcome == CodeInternal || outcome == CodeStoreUnavailable || outcome == CodeUpstreamUnavailable {
				span.SetStatus(codes.Error, outcome)
			}
			span.End()
		}
	}
}

// outcomeOf is an error's public code, or ok when err is nil.
func outcomeOf(err error, ok string) string {
	if err == nil {
		return ok
	}
	if e, is := err.(*Error); is {
		return e.Code
	}
	return AsError(err).Code
}

// CacheStats returns the status cache's counts: hits, misses (reads that
// went to the store) and stale answers served while the store failed.
func (s *Service) CacheStats() (hits, misses, stale uint64) { return s.cache.Counts() }

// Interface guards
var (
	_ Observer           = NopObserver{}
	_ upstreams.Observer = NopObserver{}
)

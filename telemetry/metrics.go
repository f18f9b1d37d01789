package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/upstreams"
)

// Metric names (Prometheus form, as Caddy's /metrics shows them). Labels
// are product, source, endpoint, outcome and code only (STYLE practice 8).
const (
	metricGateDecisions    = "licensegate_gate_decisions"         // _total{product,code}
	metricExchanges        = "licensegate_exchanges"              // _total{endpoint,outcome}
	metricExchangeDuration = "licensegate_exchange_duration"      // _seconds{endpoint,outcome}
	metricUpstreamCalls    = "licensegate_upstream_calls"         // _total{source,outcome}
	metricUpstreamDuration = "licensegate_upstream_call_duration" // _seconds{source,outcome}
	metricBreakerState     = "licensegate_upstream_breaker_state" // {source}: 0 closed, 1 open, 2 half-open
	metricBudgetWaits      = "licensegate_upstream_budget_waits"  // _total{source,outcome=waited|refused}
	metricCacheHits        = "licensegate_status_cache_hits"      // _total
	metricCacheMisses      = "licensegate_status_cache_misses"    // _total
	metricCacheStale       = "licensegate_status_cache_stale"     // _total: served stale, store failing
	metricStoreErrors      = "licensegate_store_errors"           // _total{endpoint}: the operation
	metricRecheckDue       = "licensegate_recheck_due"            // {source}
	metricRecheckBacklog   = "licensegate_recheck_backlog"        // {source}
	metricRecheckLag       = "licensegate_recheck_lag"            // _seconds{source}
	metricRecheckOutcomes  = "licensegate_recheck_outcomes"       // _total{source,outcome}
	metricWebhookDelivery  = "licensegate_webhook_deliveries"     // _total{outcome}
	metricStoreHooks       = "licensegate_store_hooks"            // _total{source,outcome}
	metricWebhookPending   = "licensegate_webhook_pending"        // gauge
	meterName              = "github.com/licensegate/licensegate" // instrumentation scope
)

// Metrics implements gateway.Observer and upstreams.Observer with
// OpenTelemetry instruments. A process needs one, like Caddy's own
// metrics, so counts survive config reloads; its Prometheus collector
// (Collector) is registered on each config's metrics registry, and it
// also exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set.
type Metrics struct {
	provider  *sdkmetric.MeterProvider
	collector prometheus.Collector

	exchanges, calls, waits, storeErrors, rechecks, deliveries, hooks metric.Int64Counter
	exchangeTime, callTime                                            metric.Float64Histogram

	// gate counts the gate's decisions in-process; an observable counter
	// reads them at collection.
	gate gateCounts

	// opts caches each label combination's options: the request path
	// looks them up without a lock or an allocation.
	opts cowMap[labels, []metric.AddOption]

	// current is the running config whose sources, cache and backlog the
	// observable instruments read.
	current atomic.Pointer[Running]
}

// Running is what the observable instruments read of the running config:
// its service (status cache, recheck backlog, outbox) and its sources
// (breaker states).
type Running struct {
	Service *gateway.Service
	Sources map[string]upstreams.Source
}

// Observe makes r the config the observable instruments read.
func (m *Metrics) Observe(r *Running) { m.current.Store(r) }

// Forget stops reading r, unless another config has taken its place.
func (m *Metrics) Forget(r *Running) { m.current.CompareAndSwap(r, nil) }

// Collector is the Prometheus collector to register on a metrics
// registry (one per Caddy config load).
func (m *Metrics) Collector() prometheus.Collector { return m.collector }

// labels is one label combination: at most two of the bounded labels.
type labels struct{ k1, v1, k2, v2 string }

// captureRegisterer keeps the collector the Prometheus exporter registers,
// so it can be registered on every config's registry.
type captureRegisterer struct{ c prometheus.Collector }

func (r *captureRegisterer) Register(c prometheus.Collector) error { r.c = c; return nil }
func (r *captureRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.c = c
	}
}
func (r *captureRegisterer) Unregister(prometheus.Collector) bool { return true }

// New builds the instruments and their exporters.
func New() (*Metrics, error) {
	capture := &captureRegisterer{}
	exporter, err := otelprom.New(otelprom.WithRegisterer(capture), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("building the Prometheus exporter: %w", err)
	}
	readers := []sdkmetric.Option{sdkmetric.WithReader(exporter)}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" {
		otlp, err := otlpmetrichttp.New(context.Background())
		if err != nil {
			return nil, fmt.Errorf("building the OTLP metric exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(otlp)))
	}
	m := &Metrics{provider: sdkmetric.NewMeterProvider(readers...), collector: capture.c}
	if err := m.instruments(m.provider.Meter(meterName)); err != nil {
		return nil, fmt.Errorf("building licensegate metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) instruments(meter metric.Meter) error {
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string, bounds ...float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	m.exchanges = counter(metricExchanges, "Installer requests by endpoint and outcome (ok, or the error's code).")
	m.exchangeTime = seconds(metricExchangeDuration, "Installer request latency by endpoint and outcome.",
		0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	m.calls = counter(metricUpstreamCalls, "Calls of a marketplace by source and outcome (valid, invalid, unknown).")
	m.callTime = seconds(metricUpstreamDuration, "Marketplace call latency by source and outcome.",
		0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
	m.waits = counter(metricBudgetWaits, "Callers that waited for a source's rate budget (waited) or were refused (refused).")
	m.storeErrors = counter(metricStoreErrors, "Store failures by operation (endpoint).")
	m.rechecks = counter(metricRecheckOutcomes, "Background rechecks by source and outcome.")
	m.deliveries = counter(metricWebhookDelivery, "Webhook delivery attempts by outcome.")
	m.hooks = counter(metricStoreHooks, "Store webhooks received, by source and outcome (queued, ignored, replayed, refused, malformed).")

	hits, err := meter.Int64ObservableCounter(metricCacheHits, metric.WithDescription("Gate status look-ups answered from the in-process cache."))
	errs = append(errs, err)
	misses, err := meter.Int64ObservableCounter(metricCacheMisses, metric.WithDescription("Gate status look-ups that went to the store."))
	errs = append(errs, err)
	stale, err := meter.Int64ObservableCounter(metricCacheStale, metric.WithDescription("Gate status look-ups served stale while the store failed."))
	errs = append(errs, err)
	breaker, err := meter.Int64ObservableGauge(metricBreakerState, metric.WithDescription("A source's circuit breaker: 0 closed, 1 open, 2 half-open."))
	errs = append(errs, err)
	due, err := meter.Int64ObservableGauge(metricRecheckDue, metric.WithDescription("Licences due for a recheck now, by source."))
	errs = append(errs, err)
	backlog, err := meter.Int64ObservableGauge(metricRecheckBacklog, metric.WithDescription("Licences scheduled for a recheck, by source."))
	errs = append(errs, err)
	lag, err := meter.Float64ObservableGauge(metricRecheckLag, metric.WithUnit("s"), metric.WithDescription("Age of the oldest overdue recheck, by source."))
	errs = append(errs, err)
	pending, err := meter.Int64ObservableGauge(metricWebhookPending, metric.WithDescription("Webhook deliveries waiting in the outbox."))
	errs = append(errs, err)
	gate, err := meter.Int64ObservableCounter(metricGateDecisions, metric.WithDescription("Gate decisions by product and code (admitted, or the refusal's code)."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		m.gate.observe(o, gate)
		app := m.current.Load()
		if app == nil || app.Service == nil {
			return nil
		}
		h, mi, st := app.Service.CacheStats()
		o.ObserveInt64(hits, int64(h))
		o.ObserveInt64(misses, int64(mi))
		o.ObserveInt64(stale, int64(st))
		for name, src := range app.Sources {
			if b, ok := src.(breakerStater); ok {
				o.ObserveInt64(breaker, int64(b.BreakerState()), metric.WithAttributes(attribute.String("source", name)))
			}
		}
		bl := app.Service.Backlog(ctx)
		for name, r := range bl.Recheck {
			src := metric.WithAttributes(attribute.String("source", name))
			o.ObserveInt64(due, r.Due, src)
			o.ObserveInt64(backlog, r.Backlog, src)
			o.ObserveFloat64(lag, r.Lag.Seconds(), src)
		}
		if bl.WebhookPending != nil {
			o.ObserveInt64(pending, *bl.WebhookPending)
		}
		return nil
	}, hits, misses, stale, breaker, due, backlog, lag, pending, gate)
	return err
}

// breakerStater is a source whose circuit breaker can be read (the
// resilience wrapper).
type breakerStater interface {
	BreakerState() upstreams.BreakerState
}

// options returns the options of a label combination, built once.
func (m *Metrics) options(l labels) []metric.AddOption {
	if o, ok := m.opts.all()[l]; ok {
		return o
	}
	return m.opts.add(l, func() []metric.AddOption {
		kv := []attribute.KeyValue{attribute.String(l.k1, l.v1)}
		if l.k2 != "" {
			kv = append(kv, attribute.String(l.k2, l.v2))
		}
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
	})
}

// record is the histograms' options: the same attribute set as the
// counters'.
func record(o []metric.AddOption) metric.RecordOption {
	return o[0].(metric.RecordOption)
}

// GateDecision implements gateway.Observer.
func (m *Metrics) GateDecision(product, code string) {
	if product == "" {
		product = "none"
	}
	m.gate.add(product, code)
}

// Exchange implements gateway.Observer.
func (m *Metrics) Exchange(endpoint, outcome string, took time.Duration) {
	o := m.options(labels{"endpoint", endpoint, "outcome", outcome})
	m.exchanges.Add(context.Background(), 1, o...)
	m.exchangeTime.Record(context.Background(), took.Seconds(), record(o))
}

// StoreError implements gateway.Observer.
func (m *Metrics) StoreError(op string) {
	m.storeErrors.Add(context.Background(), 1, m.options(labels{k1: "endpoint", v1: op})...)
}

// Call implements upstreams.Observer.
func (m *Metrics) Call(source, outcome string, took time.Duration) {
	o := m.options(labels{"source", source, "outcome", outcome})
	m.calls.Add(context.Background(), 1, o...)
	m.callTime.Record(context.Background(), took.Seconds(), record(o))
}

// BudgetWait implements upstreams.Observer.
func (m *Metrics) BudgetWait(source string, _ time.Duration, refused bool) {
	outcome := "waited"
	if refused {
		outcome = "refused"
	}
	m.waits.Add(context.Background(), 1, m.options(labels{"source", source, "outcome", outcome})...)
}

// RecheckOutcome implements gateway.Observer.
func (m *Metrics) RecheckOutcome(source, outcome string) {
	m.rechecks.Add(context.Background(), 1, m.options(labels{"source", source, "outcome", outcome})...)
}

// WebhookDelivery implements gateway.Observer.
func (m *Metrics) WebhookDelivery(outcome string) {
	m.deliveries.Add(context.Background(), 1, m.options(labels{k1: "outcome", v1: outcome})...)
}

// StoreHook implements gateway.Observer.
func (m *Metrics) StoreHook(source, outcome string) {
	m.hooks.Add(context.Background(), 1, m.options(labels{"source", source, "outcome", outcome})...)
}

// Interface guards
var (
	_ gateway.Observer   = (*Metrics)(nil)
	_ upstreams.Observer = (*Metrics)(nil)
)

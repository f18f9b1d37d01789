package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
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
	metricWebhookPending   = "licensegate_webhook_pending"        // gauge
	meterName              = "github.com/licensegate/licensegate" // instrumentation scope
)

// otelMetrics implements gateway.Observer and upstreams.Observer with
// OpenTelemetry instruments. There is one per process, like Caddy's own
// metrics, so counts survive config reloads; its Prometheus collector is
// registered on each config's metrics registry (registrations), and it
// also exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set.
type otelMetrics struct {
	provider  *sdkmetric.MeterProvider
	collector prometheus.Collector

	exchanges, calls, waits, storeErrors, rechecks, deliveries metric.Int64Counter
	exchangeTime, callTime                                     metric.Float64Histogram

	// gate counts the gate's decisions in-process; an observable counter
	// reads them at collection.
	gate gateCounts

	// opts caches each label combination's options: the request path
	// looks them up without a lock or an allocation.
	opts cowMap[labels, []metric.AddOption]

	// current is the running app whose sources, cache and backlog the
	// observable instruments read.
	current atomic.Pointer[App]
}

// labels is one label combination: at most two of the bounded labels.
type labels struct{ k1, v1, k2, v2 string }

var processMetrics struct {
	once sync.Once
	m    *otelMetrics
	err  error
}

// registrations holds the collector's registration on each config's
// metrics registry, released when the last config using it is cleaned up.
var registrations = caddy.NewUsagePool()

type registration struct {
	reg       *prometheus.Registry
	collector prometheus.Collector
}

func (r registration) Destruct() error {
	r.reg.Unregister(r.collector)
	return nil
}

// provisionMetrics returns the process's metrics, registered on ctx's
// metrics registry, and the key to release on Cleanup.
func provisionMetrics(ctx caddy.Context) (*otelMetrics, string, error) {
	processMetrics.once.Do(func() { processMetrics.m, processMetrics.err = newOtelMetrics() })
	m := processMetrics.m
	if processMetrics.err != nil {
		return nil, "", processMetrics.err
	}
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return m, "", nil
	}
	key, err := m.registerOn(reg)
	if err != nil {
		return nil, "", err
	}
	return m, key, nil
}

// registerOn registers the collector on reg unless a config already did
// (Caddy gives each config load its own registry, and an app of one load
// may be provisioned more than once), and returns the key to release.
func (m *otelMetrics) registerOn(reg *prometheus.Registry) (string, error) {
	key := fmt.Sprintf("metrics:%p", reg)
	_, _, err := registrations.LoadOrNew(key, func() (caddy.Destructor, error) {
		if err := reg.Register(m.collector); err != nil {
			return nil, fmt.Errorf("registering licensegate metrics: %w", err)
		}
		return registration{reg: reg, collector: m.collector}, nil
	})
	return key, err
}

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

func newOtelMetrics() (*otelMetrics, error) {
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
	m := &otelMetrics{provider: sdkmetric.NewMeterProvider(readers...), collector: capture.c}
	if err := m.instruments(m.provider.Meter(meterName)); err != nil {
		return nil, fmt.Errorf("building licensegate metrics: %w", err)
	}
	return m, nil
}

func (m *otelMetrics) instruments(meter metric.Meter) error {
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
		if app == nil || app.svc == nil {
			return nil
		}
		h, mi, st := app.svc.CacheStats()
		o.ObserveInt64(hits, int64(h))
		o.ObserveInt64(misses, int64(mi))
		o.ObserveInt64(stale, int64(st))
		for name, src := range app.sources {
			if b, ok := src.(breakerStater); ok {
				o.ObserveInt64(breaker, int64(b.BreakerState()), metric.WithAttributes(attribute.String("source", name)))
			}
		}
		bl := app.svc.Backlog(ctx)
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

// gateCounts is the gate's decision counter: one atomic per product and
// code, observed at collection. The SDK's synchronous Add resolves the
// attribute set into its own locked map on every call (~190 ns, a sixth
// of the gate's admission); here a decision is one map read and one
// atomic add (~18 ns, BenchmarkGateDecision).
type gateCounts struct {
	m cowMap[gateKey, *gateCount]
}

type gateKey struct{ product, code string }

type gateCount struct {
	n    atomic.Int64
	opts metric.ObserveOption // the product and code attributes, built once
}

// add counts one decision.
func (g *gateCounts) add(product, code string) {
	k := gateKey{product, code}
	c, ok := g.m.all()[k]
	if !ok {
		c = g.m.add(k, func() *gateCount {
			return &gateCount{opts: metric.WithAttributeSet(attribute.NewSet(
				attribute.String("product", k.product), attribute.String("code", k.code)))}
		})
	}
	c.n.Add(1)
}

// observe reports every counter to o as inst.
func (g *gateCounts) observe(o metric.Observer, inst metric.Int64Observable) {
	for _, c := range g.m.all() {
		o.ObserveInt64(inst, c.n.Load(), c.opts)
	}
}

// cowMap is a map read without a lock and copied on write, for what the
// request path looks up by label: the combinations are few, and all are
// made within the first requests.
type cowMap[K comparable, V any] struct {
	mu sync.Mutex // serialises the writes
	m  atomic.Pointer[map[K]V]
}

// add returns k's value, made by mk and stored in a copy of the map when
// k has none yet. Callers look k up in all first: indexing there, in the
// caller's concrete types, is faster than in a generic method.
func (c *cowMap[K, V]) add(k K, mk func() V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.all()
	if v, ok := cur[k]; ok {
		return v
	}
	v := mk()
	next := make(map[K]V, len(cur)+1)
	maps.Copy(next, cur)
	next[k] = v
	c.m.Store(&next)
	return v
}

// all is the current map; it must not be modified.
func (c *cowMap[K, V]) all() map[K]V {
	if m := c.m.Load(); m != nil {
		return *m
	}
	return nil
}

// breakerStater is a source whose circuit breaker can be read (the
// resilience wrapper).
type breakerStater interface {
	BreakerState() upstreams.BreakerState
}

// options returns the options of a label combination, built once.
func (m *otelMetrics) options(l labels) []metric.AddOption {
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
func (m *otelMetrics) GateDecision(product, code string) {
	if product == "" {
		product = "none"
	}
	m.gate.add(product, code)
}

// Exchange implements gateway.Observer.
func (m *otelMetrics) Exchange(endpoint, outcome string, took time.Duration) {
	o := m.options(labels{"endpoint", endpoint, "outcome", outcome})
	m.exchanges.Add(context.Background(), 1, o...)
	m.exchangeTime.Record(context.Background(), took.Seconds(), record(o))
}

// StoreError implements gateway.Observer.
func (m *otelMetrics) StoreError(op string) {
	m.storeErrors.Add(context.Background(), 1, m.options(labels{k1: "endpoint", v1: op})...)
}

// Call implements upstreams.Observer.
func (m *otelMetrics) Call(source, outcome string, took time.Duration) {
	o := m.options(labels{"source", source, "outcome", outcome})
	m.calls.Add(context.Background(), 1, o...)
	m.callTime.Record(context.Background(), took.Seconds(), record(o))
}

// BudgetWait implements upstreams.Observer.
func (m *otelMetrics) BudgetWait(source string, _ time.Duration, refused bool) {
	outcome := "waited"
	if refused {
		outcome = "refused"
	}
	m.waits.Add(context.Background(), 1, m.options(labels{"source", source, "outcome", outcome})...)
}

// RecheckOutcome implements gateway.Observer.
func (m *otelMetrics) RecheckOutcome(source, outcome string) {
	m.rechecks.Add(context.Background(), 1, m.options(labels{"source", source, "outcome", outcome})...)
}

// WebhookDelivery implements gateway.Observer.
func (m *otelMetrics) WebhookDelivery(outcome string) {
	m.deliveries.Add(context.Background(), 1, m.options(labels{k1: "outcome", v1: outcome})...)
}

// Interface guards
var (
	_ gateway.Observer   = (*otelMetrics)(nil)
	_ upstreams.Observer = (*otelMetrics)(nil)
)

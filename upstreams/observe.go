package upstreams

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Observer is told about the resilience layer's work, for metrics. Its
// labels are bounded: the source's configured name and an outcome. Its
// methods must not block.
type Observer interface {
	// Call counts one real call of a source, by outcome ("valid",
	// "invalid", "unknown") and how long it took.
	Call(source, outcome string, took time.Duration)
	// BudgetWait counts a caller that waited for the rate budget (took:
	// how long), or was refused at once (refused).
	BudgetWait(source string, took time.Duration, refused bool)
}

// BreakerState is a circuit breaker's state (Resilient.BreakerState).
type BreakerState int

// Breaker states.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return "closed"
}

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) Call(string, string, time.Duration)     {}
func (nopObserver) BudgetWait(string, time.Duration, bool) {}

// BreakerState returns the source's circuit state.
func (r *Resilient) BreakerState() BreakerState { return r.breaker.state() }

// tracerName is the instrumentation scope of the upstream calls' spans.
const tracerName = "github.com/licensegate/licensegate/upstreams"

// startSpan starts a span for one call of the source when ctx carries a
// recording span (Caddy's tracing is on): the source's name, never the key.
func startSpan(ctx context.Context, name, source string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	var opts []trace.SpanStartOption
	if source != "" {
		opts = append(opts, trace.WithAttributes(attribute.String("licensegate.source", source)))
	} else {
		opts = append(opts, trace.WithSpanKind(trace.SpanKindClient))
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, name, opts...)
}

// endSpan records the verdict on span, if any, and ends it.
func endSpan(span trace.Span, v Verdict) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("licensegate.outcome", v.Outcome.String()))
	if v.Outcome == Unknown {
		span.SetStatus(codes.Error, "unknown")
	}
	span.End()
}

// Package telemetry is licensegate's metrics: OpenTelemetry instruments
// behind gateway.Observer and upstreams.Observer, exported to Prometheus
// (Caddy's /metrics, through Collector) and, when the standard OTEL_*
// variables ask for it, over OTLP/HTTP. Labels are bounded (product,
// source, endpoint, outcome, code): no licence, installation or domain
// ever becomes a series.
package telemetry

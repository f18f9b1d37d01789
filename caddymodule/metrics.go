package caddymodule

import (
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/licensegate/licensegate/telemetry"
)

// processMetrics is the process's one telemetry.Metrics: counts survive
// config reloads, as Caddy's own metrics do.
var processMetrics struct {
	once sync.Once
	m    *telemetry.Metrics
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
func provisionMetrics(ctx caddy.Context) (*telemetry.Metrics, string, error) {
	processMetrics.once.Do(func() { processMetrics.m, processMetrics.err = telemetry.New() })
	m := processMetrics.m
	if processMetrics.err != nil {
		return nil, "", processMetrics.err
	}
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return m, "", nil
	}
	key, err := registerOn(m, reg)
	if err != nil {
		return nil, "", err
	}
	return m, key, nil
}

// registerOn registers m's collector on reg unless a config already did
// (Caddy gives each config load its own registry, and an app of one load
// may be provisioned more than once), and returns the key to release.
func registerOn(m *telemetry.Metrics, reg *prometheus.Registry) (string, error) {
	key := fmt.Sprintf("metrics:%p", reg)
	_, _, err := registrations.LoadOrNew(key, func() (caddy.Destructor, error) {
		if err := reg.Register(m.Collector()); err != nil {
			return nil, fmt.Errorf("registering licensegate metrics: %w", err)
		}
		return registration{reg: reg, collector: m.Collector()}, nil
	})
	return key, err
}

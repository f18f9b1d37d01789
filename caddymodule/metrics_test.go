package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/telemetry"
	"github.com/licensegate/licensegate/upstreams"
)

// countSeries gathers reg and counts the licensegate_* series (a
// histogram counts once per label set).
func countSeries(t *testing.T, reg *prometheus.Registry) (families, series int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "licensegate_") {
			families++
			series += len(mf.GetMetric())
		}
	}
	return families, series
}

// TestMetricSeriesStayBounded (issue 13, acceptance 2): exercising 10,000
// distinct licences and installations adds no licensegate_* series.
func TestMetricSeriesStayBounded(t *testing.T) {
	m, err := telemetry.New()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	src := upstreams.NewResilient(testSource{}, upstreams.ResilienceConfig{Observer: m, Rate: upstreams.Rate{Calls: 1 << 30, Period: 1}})
	svc := newServiceForTest(t, gateway.Config{
		Sources:      map[string]upstreams.Source{"test": src},
		Products:     map[string]*gateway.Product{"p": {Name: "p", Sources: []string{"test"}, Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
		Observer:     m,
	})
	m.Observe(&telemetry.Running{Service: svc, Sources: map[string]upstreams.Source{"test": src}})
	gate := svc.Gate(nil)
	ctx := context.Background()
	exercise := func(from, to int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range work {
					a, err := svc.ActivateIdempotent(ctx, "", gateway.ActivateRequest{Key: fmt.Sprintf("KEY-%06d", i), Domain: fmt.Sprintf("site%d.example.com", i)})
					if err != nil {
						t.Error(err)
						continue
					}
					if _, err := gate.Admit(ctx, a.AccessToken, 0); err != nil {
						t.Error(err)
					}
					_, _ = gate.Admit(ctx, a.AccessToken+"x", 0) // refused: invalid_token
					if i%10 == 0 {
						if _, err := svc.Refresh(ctx, a.RefreshToken); err != nil {
							t.Error(err)
						}
						_, _ = svc.Refresh(ctx, a.RefreshToken) // spent: a reuse
					}
				}
			})
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	exercise(0, 100)
	fam0, series0 := countSeries(t, reg)
	exercise(100, 10000)
	fam1, series1 := countSeries(t, reg)
	t.Logf("licensegate_* after 100 licences: %d families, %d series; after 10,000: %d families, %d series", fam0, series0, fam1, series1)
	if series1 != series0 || fam1 != fam0 {
		t.Fatalf("series grew with licences: %d -> %d", series0, series1)
	}
	if fam0 < 6 {
		t.Fatalf("only %d licensegate families", fam0)
	}
}

// TestMetricsRegisterOncePerRegistry: two configs on one registry (a
// reload that keeps it) share one registration; a new registry gets its
// own, and the counts carry over.
func TestMetricsRegisterOncePerRegistry(t *testing.T) {
	m, err := telemetry.New()
	if err != nil {
		t.Fatal(err)
	}
	m.GateDecision("p", gateway.OutcomeAdmitted)
	for range 2 {
		reg := prometheus.NewPedanticRegistry()
		for range 2 {
			key, err := registerOn(m, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer registrations.Delete(key)
		}
		if fams, series := countSeries(t, reg); fams != 1 || series != 1 {
			t.Fatalf("%d families, %d series", fams, series)
		}
	}
}

// TestGateAdmitWithMetricsAllocatesNothing: the metrics keep the gate's
// steady-state admission allocation-free.
func TestGateAdmitWithMetricsAllocatesNothing(t *testing.T) {
	m, err := telemetry.New()
	if err != nil {
		t.Fatal(err)
	}
	f := newGateFixture(t, m)
	token := f.act.AccessToken
	ctx := context.Background()
	if _, err := f.gate.gate.Admit(ctx, token, 0); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = f.gate.gate.Admit(ctx, token, 0) }); n != 0 {
		t.Fatalf("%v allocations per admission with metrics on", n)
	}
}

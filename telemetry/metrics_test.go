package telemetry

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licensegate/licensegate/gateway"
)

// BenchmarkGateDecision is the metrics' cost on the gate's path.
func BenchmarkGateDecision(b *testing.B) {
	m, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.GateDecision("p", gateway.OutcomeAdmitted)
	}
}

// TestGateDecisionCounts: the gate's decisions reach /metrics as a
// counter per product and code, concurrent decisions all counted.
func TestGateDecisionCounts(t *testing.T) {
	m, err := New()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				m.GateDecision("p", gateway.OutcomeAdmitted)
			}
			m.GateDecision("", gateway.CodeInvalidToken)
		})
	}
	wg.Wait()
	m.GateDecision("q", gateway.CodeInstallationInactive)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metricGateDecisions+"_total" {
			continue
		}
		if mf.GetType().String() != "COUNTER" {
			t.Fatalf("%s is a %s", mf.GetName(), mf.GetType())
		}
		for _, s := range mf.GetMetric() {
			var l []string
			for _, p := range s.GetLabel() {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			got[strings.Join(l, ",")] = s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"code=admitted,product=p":                 4000,
		"code=invalid_token,product=none":         4,
		"code=installation_deactivated,product=q": 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("gate decisions = %v, want %v", got, want)
	}
}

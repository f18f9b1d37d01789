package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver stands in for an OTLP/HTTP collector: it decodes the
// protobuf trace exports it is sent.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracev1.Span
	metrics map[string]bool // names of the metrics exported
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/metrics" {
		var req colmetrics.ExportMetricsServiceRequest
		if proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					o.metrics[m.GetName()] = true
				}
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func (o *otlpReceiver) snapshot() []*tracev1.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracev1.Span(nil), o.spans...)
}

// TestActivationTrace (issue 13, acceptance 3): with Caddy's tracing
// directive on the exchange route, one activation through Envato's fake
// is one trace holding Caddy's request span, activate and the Envato call,
// and no attribute holds the purchase code or the author's token. With
// OTEL_EXPORTER_OTLP_ENDPOINT set, the metrics are pushed over OTLP too.
func TestActivationTrace(t *testing.T) {
	recv := &otlpReceiver{metrics: map[string]bool{}}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)

	g, _ := withSources(t, "envato")
	g.template = strings.Replace(g.template, "\thandle /v1/licenses/* {\n", "\thandle /v1/licenses/* {\n\t\ttracing {\n\t\t\tspan caddy_exchange\n\t\t}\n", 1)
	if !strings.Contains(g.template, "span caddy_exchange") {
		t.Fatal("template not traced")
	}
	g.extraEnv = []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRIC_EXPORT_INTERVAL=200",
	}
	g.start()
	expectStatus(t, g.activate(envatoKey, "acme.com"), http.StatusCreated, "")

	var spans []*tracev1.Span
	waitFor(t, 10*time.Second, "the activation's spans exported", func() bool {
		spans = recv.snapshot()
		names := map[string]bool{}
		for _, s := range spans {
			names[s.GetName()] = true
		}
		return names["caddy_exchange"] && names["activate"] && names["source envato"] && names["HTTP GET"]
	})
	var traceID string
	for _, s := range spans {
		if s.GetName() == "activate" {
			traceID = string(s.GetTraceId())
		}
	}
	inTrace := map[string]bool{}
	for _, s := range spans {
		if string(s.GetTraceId()) == traceID {
			inTrace[s.GetName()] = true
		}
	}
	for _, name := range []string{"caddy_exchange", "activate", "source envato", "HTTP GET"} {
		if !inTrace[name] {
			t.Errorf("the activation's trace has no %q span: %v", name, inTrace)
		}
	}
	for _, s := range spans {
		t.Logf("span %q trace %x parent %x", s.GetName(), s.GetTraceId(), s.GetParentSpanId())
		for _, kv := range s.GetAttributes() {
			val := kv.GetValue().String()
			for _, secret := range []string{envatoKey, strings.ToUpper(envatoKey), "test-envato-token"} {
				if strings.Contains(val, secret) {
					t.Errorf("span %s attribute %s holds a secret: %s", s.GetName(), kv.GetKey(), val)
				}
			}
		}
	}
	waitFor(t, 10*time.Second, "the metrics pushed over OTLP", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		return recv.metrics["licensegate_exchanges"] && recv.metrics["licensegate_upstream_calls"]
	})
}

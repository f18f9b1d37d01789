package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver stands in for an OTLP/HTTP collector: it decodes the
// protobuf trace exports it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracev1.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
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
// and no attribute holds the purchase code or the author's token.
func TestActivationTrace(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)

	v := newVendors()
	vsrv := httptest.NewServer(v)
	t.Cleanup(vsrv.Close)
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = strings.Replace(sourcesTemplate, "\thandle /v1/licenses/* {\n", "\thandle /v1/licenses/* {\n\t\ttracing {\n\t\t\tspan caddy_exchange\n\t\t}\n", 1)
	if !strings.Contains(g.template, "span caddy_exchange") {
		t.Fatal("template not traced")
	}
	g.vars["SOURCES"] = strings.ReplaceAll(sourceConfig["envato"][0], "{{VENDOR}}", vsrv.URL)
	g.vars["SOURCE_NAMES"] = "envato"
	g.vars["MAPPINGS"] = sourceConfig["envato"][1]
	g.vars["EXCHANGE"] = ""
	g.extraEnv = []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + collector.URL + "/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRICS_EXPORTER=none",
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
}

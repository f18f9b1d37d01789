package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lemonGateway is a gateway selling converter-pro on Lemon Squeezy at
// vendorURL, with the exchange options given, started.
func lemonGateway(t *testing.T, vendorURL, exchange string) *gateway {
	t.Helper()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = sourcesTemplate
	g.vars["SOURCES"] = strings.ReplaceAll(sourceConfig["lemonsqueezy"][0], "{{VENDOR}}", vendorURL)
	g.vars["SOURCE_NAMES"] = "lemonsqueezy"
	g.vars["MAPPINGS"] = sourceConfig["lemonsqueezy"][1]
	g.vars["EXCHANGE"] = exchange
	g.start()
	return g
}

// Issue 20, N2: a hostile or compromised store answering a redirect to a
// local URL (here the gateway's own admin /stop, and a recording server)
// is not followed: the activation answers 503 upstream_unavailable, the
// targets receive nothing, and the gateway keeps running.
func TestSourceRedirectsAreNotFollowed(t *testing.T) {
	var received atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { received.Add(1) }))
	t.Cleanup(target.Close)
	var location atomic.Value
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location.Load().(string))
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(store.Close)
	g := lemonGateway(t, store.URL, "")

	for _, to := range []string{g.adminURL("/stop"), target.URL + "/collect"} {
		location.Store(to)
		r := g.activate(lemonKey, "buyer.com")
		expectStatus(t, r, http.StatusServiceUnavailable, "upstream_unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	}
	if n := received.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
	// Still running: the redirect to /stop was not followed.
	expectStatus(t, do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil), http.StatusOK, "")
	if !strings.Contains(g.logs.String(), "which is not followed") {
		t.Errorf("no log line says the redirect was refused:\n%s", g.logs.String())
	}
}

// Issue 20, L1: a request body trickled a byte at a time no longer holds
// a connection and a handler: past body_timeout the answer is 408
// request_timeout, and the connection's next request is served normally.
func TestTrickledBodyTimesOut(t *testing.T) {
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.vars["EXCHANGE"] = "{\n\t\t\tbody_timeout 2s\n\t\t}"
	g.start()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "license_key=KEY-AAAA-0001&domain=trickle.com"
	fmt.Fprintf(conn, "POST /v1/licenses/activate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", len(body))
	start := time.Now()
	done := make(chan struct{})
	go func() { // a byte every 200 ms: the whole body would take 9 s
		defer close(done)
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-t.Context().Done():
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), `"request_timeout"`) {
		t.Fatalf("trickled body: %d %s, want 408 request_timeout", resp.StatusCode, raw)
	}
	if took > 5*time.Second {
		t.Fatalf("answered after %v, want about the 2s body_timeout", took)
	}
	t.Logf("408 after %v", took.Round(time.Millisecond))
	conn.Close()
	<-done
	// The gateway serves the next client as ever.
	expectStatus(t, g.activate("KEY-AAAA-0001", "after.com"), http.StatusCreated, "")
}

// body_timeout bounds the body's arrival only: an activation whose body
// came at once but whose marketplace call outlasts body_timeout is not
// cut off (net/http's watch on the connection would cancel it if the
// deadline stayed in place).
func TestBodyTimeoutDoesNotCutASlowMarketplaceCall(t *testing.T) {
	v := newVendors()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2500 * time.Millisecond)
		v.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	g := lemonGateway(t, slow.URL, "{\n\t\t\tbody_timeout 1s\n\t\t}")
	expectStatus(t, g.activate(lemonKey, "buyer.com"), http.StatusCreated, "")
}

package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/supervise"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/tokens"
)

// waitLimit bounds how long a test waits for a worker to get somewhere;
// reaching it is a failure, never the expected path.
const waitLimit = 10 * time.Second

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// testSupervisor restarts at once, so tests never wait on a backoff.
func testSupervisor(logger *zap.Logger) *supervise.Supervisor {
	s := supervise.New(logger)
	s.Backoff = func(int) time.Duration { return 0 }
	return s
}

// panickyStore panics on the first Subscribe, then delivers the store's
// notices through an unbuffered channel, each followed by a no-op notice:
// once the service's single feed loop takes that one it has finished with
// the real one, which is then reported on delivered. A no-op notice also
// comes first, so subscribed means the subscription's own cache reset is
// done.
type panickyStore struct {
	store.Store
	panics     atomic.Int32
	subscribed chan struct{}
	delivered  chan store.Change
}

func (p *panickyStore) Subscribe(ctx context.Context) (<-chan store.Change, error) {
	if p.panics.Add(-1) >= 0 {
		panic("injected: subscribing")
	}
	in, err := p.Store.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Change)
	send := func(c store.Change) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		if !send(store.Change{}) {
			return
		}
		p.subscribed <- struct{}{}
		for c := range in {
			if !send(c) || !send(store.Change{}) {
				return
			}
			p.delivered <- c
		}
	}()
	return out, nil
}

type fixedClock struct{ t time.Time }

func (c fixedClock) now() time.Time { return c.t }

// signer issues access tokens for product p's installation ins_1 of a
// licence, as a service over the same store would.
type signer func(license string) string

// newTestService is a service for product p over st, its key ring not
// loaded yet, and a signer of its access tokens.
func newTestService(t *testing.T, st store.Store, now func() time.Time) (*gateway.Service, signer) {
	t.Helper()
	master, err := secret.New([]byte("worker-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := gateway.New(gateway.Config{
		Store: st, Master: master, Issuer: "iss", Now: now,
		Products: map[string]*gateway.Product{"p": {Name: "p"}}, ProductOrder: []string{"p"},
		Cache: store.CacheConfig{TTL: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	ring := tokens.NewRing(st, master, now)
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	issuer := tokens.NewIssuer(ring, "iss", time.Hour)
	sign := func(license string) string {
		tok, err := issuer.Issue(tokens.Claims{Audience: "p", Subject: "ins_1", License: license,
			Domain: "example.com", Class: "production", Generation: 1})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return svc, sign
}

func openEmbedded(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func putLicense(t *testing.T, st store.Store, id, status string, now time.Time) {
	t.Helper()
	_, err := st.UpdateLicense(context.Background(), id, func(s *store.LicenseState) (*store.LicenseState, error) {
		if s.License == nil {
			s.License = &store.License{ID: id, Product: "p", Source: "static", CreatedAt: now, VerifiedAt: now}
			s.Installations = []store.Installation{{ID: "ins_1", LicenseID: id, Product: "p",
				Domain: "example.com", InstallClass: "production", Status: store.InstallationActive, Generation: 1}}
		}
		s.License.Status = status
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A change-feed worker that panics is restarted, and the feed keeps
// delivering: a licence suspended in the store afterwards is refused by
// the gate at once, although its active status is cached for an hour.
func TestChangeFeedSurvivesPanic(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	now := time.Now().Truncate(time.Second)
	clk := fixedClock{now} // frozen: cached statuses stay fresh
	ps := &panickyStore{Store: openEmbedded(t), subscribed: make(chan struct{}, 4), delivered: make(chan store.Change, 16)}
	ps.panics.Store(1)
	putLicense(t, ps, "lic_1", store.LicenseActive, now)

	svc, sign := newTestService(t, ps, clk.now)
	a := &App{logger: zap.New(core), store: ps, svc: svc}
	a.workers = testSupervisor(a.logger)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	receive(t, ps.subscribed, "the restarted change feed")
	if n := logs.FilterMessage("background worker panicked; restarting it").FilterField(zap.String("worker", "change_feed")).Len(); n != 1 {
		t.Fatalf("change_feed panic logged %d times, want 1: %v", n, logs.All())
	}

	token, gate := sign("lic_1"), svc.Gate(nil)
	if _, err := gate.Admit(context.Background(), token, 0); err != nil {
		t.Fatalf("active licence refused: %v", err)
	}
	putLicense(t, ps, "lic_1", store.LicenseSuspended, now)
	for c := receive(t, ps.delivered, "the suspension's notice"); c.LicenseID != "lic_1"; {
		c = receive(t, ps.delivered, "the suspension's notice")
	}
	_, err := gate.Admit(context.Background(), token, 0)
	if gateway.AsError(err).Code != gateway.CodeLicenseSuspended {
		t.Fatalf("after the suspension was announced: %v, want %s", err, gateway.CodeLicenseSuspended)
	}
}

// ourGoroutines lists goroutines still running a worker: with a frame in
// the supervisor's loop or in the service. (A goroutine past its
// WaitGroup's Done may still be on its way out: that is no leak.)
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "supervise.(*Supervisor).keep") || strings.Contains(s, "gateway.(*Service)") {
			ours = append(ours, s)
		}
	}
	return ours
}

// Stop waits for every worker to return, and leaves none of their
// goroutines behind.
func TestStopWaitsForWorkers(t *testing.T) {
	st := openEmbedded(t)
	svc, _ := newTestService(t, st, time.Now)
	a := &App{logger: zap.NewNop(), store: st, svc: svc}
	a.workers = testSupervisor(a.logger)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	// One more worker that takes its time to wind down.
	cancelled, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	a.workers.Start("slow", func(ctx context.Context) error {
		<-ctx.Done()
		close(cancelled)
		<-release
		returned.Store(true)
		return nil
	})
	stopped := make(chan struct{})
	go func() {
		_ = a.Stop()
		close(stopped)
	}()
	receive(t, cancelled, "the slow worker's cancel")
	select {
	case <-stopped:
		t.Fatal("Stop returned while a worker was still running")
	default:
	}
	close(release)
	receive(t, stopped, "Stop")
	if !returned.Load() {
		t.Fatal("Stop returned before the worker did")
	}
	if left := ourGoroutines(); len(left) > 0 {
		t.Fatalf("%d worker goroutines left after Stop:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// silentServer accepts connections and never answers: a Redis that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Start does not wait on the store: with Redis down (refusing, or
// accepting and never answering, where each store call takes its whole
// timeout), it returns at once; the key ring loads in the background.
func TestStartDoesNotWaitForRedis(t *testing.T) {
	for name, addr := range map[string]string{"refused": closedPort(t), "silent": silentServer(t)} {
		t.Run(name, func(t *testing.T) {
			cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			storage, _ := json.Marshal(map[string]any{
				"module": "redis", "address": "redis://" + addr, "timeout": "500ms", "dial_timeout": "500ms",
			})
			a := &App{StorageRaw: storage, Secret: "start-test-secret-0123456789abcdef"}
			if err := a.Provision(cctx); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			err := a.Start()
			took := time.Since(begin)
			if err != nil {
				t.Fatal(err)
			}
			// Generous for starting a few goroutines; the old Start waited
			// out a store call (500ms here against the silent server).
			if took > 100*time.Millisecond {
				t.Errorf("Start took %s with Redis down, want < 100ms", took)
			}
			_ = a.Stop()
			if left := ourGoroutines(); len(left) > 0 {
				t.Fatalf("%d worker goroutines left after Stop:\n%s", len(left), strings.Join(left, "\n\n"))
			}
		})
	}
}

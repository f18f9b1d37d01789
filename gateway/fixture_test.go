package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/teststore"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// keySource vindicates every key that starts with KEY- for product p, and
// counts its calls.
type keySource struct {
	calls int
	// answer, when set, is what Verify answers instead.
	answer *upstreams.Verdict
}

func (*keySource) Name() string { return "keys" }
func (*keySource) CanonicalKey(k string) (string, error) {
	if !strings.HasPrefix(k, "KEY-") {
		return "", upstreams.ErrKeyFormat
	}
	return k, nil
}
func (s *keySource) Verify(context.Context, upstreams.Request) upstreams.Verdict {
	s.calls++
	if s.answer != nil {
		return *s.answer
	}
	return upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular"})
}

// fixture is a service for product p (one production slot, a 24h move
// cooldown) on a fresh embedded store, on a clock the test moves.
type fixture struct {
	t     *testing.T
	svc   *Service
	store store.Store
	clock *testClock
	src   *keySource
}

const testCooldown = 24 * time.Hour

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, "embedded")
}

// newFixtureOn is newFixture on the named backend: embedded, or redis (a
// redis-server of its own).
func newFixtureOn(t *testing.T, backend string) *fixture {
	t.Helper()
	open, ok := teststore.Backends[backend]
	if !ok {
		t.Fatalf("no backend %q", backend)
	}
	st := open(t)
	return newFixtureStore(t, backend, st)
}

// newFixtureStore is newFixture on st, a store of the named backend.
func newFixtureStore(t *testing.T, backend string, st store.Store) *fixture {
	t.Helper()
	master, err := secret.New([]byte("gateway-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if backend == "redis" {
		start = time.Now().Truncate(time.Second) // Redis expires refresh records by its own clock
	}
	f := &fixture{t: t, store: st, clock: &testClock{t: start}, src: &keySource{}}
	f.svc, err = New(Config{
		Store: st, Master: master, Now: f.clock.Now, RefreshTTL: 30 * 24 * time.Hour,
		Sources: map[string]upstreams.Source{"keys": f.src},
		Products: map[string]*Product{"p": {Name: "p", Sources: []string{"keys"}, MoveCooldown: testCooldown,
			Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) activate(key, domain string) *Activation {
	f.t.Helper()
	a, err := f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: domain})
	if err != nil {
		f.t.Fatalf("activating %s on %s: %v", key, domain, err)
	}
	return a
}

// admit is the gate's answer to an access token, after the change feed
// has announced every change (the cache is dropped).
func (f *fixture) admit(token string) (Grant, error) {
	f.svc.cache.InvalidateAll()
	return f.svc.Gate(nil).Admit(context.Background(), token, 0)
}

// audited lists the actions in the audit log, oldest first.
func (f *fixture) audited() []string {
	f.t.Helper()
	evs, err := f.store.Audit(context.Background(), store.AuditQuery{Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Actor+" "+ev.Action)
	}
	return out
}

// wantCode fails unless err is a public *Error with the code.
func wantCode(t *testing.T, err error, code string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	return e
}

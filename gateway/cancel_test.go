package gateway_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/tokens"
)

type cancelFixture struct {
	st     store.Store
	master *secret.Master
	now    func() time.Time
	// cancelled returns a context that is cancelled by the time the store
	// is reached: at the first Redis command, or before the call for the
	// embedded store (bbolt does not look at contexts).
	cancelled func() context.Context
	// reaches is set when a cancelled call does reach the store (Redis):
	// it then fails, rather than finishing first.
	reaches bool
}

func newCancelFixture(t *testing.T, backend string) *cancelFixture {
	t.Helper()
	f := &cancelFixture{}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.now = func() time.Time { return clock } // frozen: a remembered failure never expires
	switch backend {
	case "embedded":
		e, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		f.st = e
		f.cancelled = func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}
	case "redis":
		client, hook := redistest.CancellingClient(t, redistest.StartServer(t))
		rs := redisstore.New(client, redisstore.Options{})
		t.Cleanup(func() { _ = rs.Close() })
		f.st = rs
		f.reaches = true
		f.cancelled = hook.Cancelled
	}
	var err error
	f.master, err = secret.New([]byte("cancel-test-secret-0123456789abcdefgh"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.st.UpdateLicense(context.Background(), "lic_c", func(s *store.LicenseState) (*store.LicenseState, error) {
		s.License = &store.License{ID: "lic_c", Product: "p", Source: "static", Status: store.LicenseActive, CreatedAt: clock}
		s.Installations = []store.Installation{{ID: "ins_c", LicenseID: "lic_c", Product: "p", Domain: "acme.com",
			InstallClass: "production", Status: store.InstallationActive, Generation: 1, CreatedAt: clock}}
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// service returns a service over the fixture's store, its key ring loaded
// when load is set, and an issuer of its access tokens (a ring of its own
// over the same store).
func (f *cancelFixture) service(t *testing.T, load bool) (*gateway.Service, *tokens.Issuer) {
	t.Helper()
	svc, err := gateway.New(gateway.Config{
		Store: f.st, Master: f.master, Issuer: "iss", Now: f.now,
		Products:     map[string]*gateway.Product{"p": {Name: "p", Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ring := tokens.NewRing(f.st, f.master, f.now)
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if load {
		if err := svc.LoadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return svc, tokens.NewIssuer(ring, "iss", time.Hour)
}

// A caller that goes away during a store call is not a store outage: the
// call is never reported as store_unavailable (on either store), and no
// failure is remembered for the callers after it.
func TestCancelledCallerIsNotStoreUnavailable(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newCancelFixture(t, backend)
			svc, issuer := f.service(t, true)
			token, err := issuer.Issue(tokens.Claims{Audience: "p", Subject: "ins_c", License: "lic_c",
				Domain: "acme.com", Class: "production", Generation: 1})
			if err != nil {
				t.Fatal(err)
			}
			gate := svc.Gate(nil)
			calls := map[string]func(context.Context) error{
				"list licences": func(ctx context.Context) error {
					_, _, err := svc.ListLicenses(ctx, gateway.LicenseFilter{})
					return err
				},
				"show licence": func(ctx context.Context) error {
					_, err := svc.License(ctx, "lic_c")
					return err
				},
				"status": func(ctx context.Context) error {
					_, err := svc.Status(ctx, token)
					return err
				},
				"stats": func(ctx context.Context) error {
					_, err := svc.Stats(ctx)
					return err
				},
				"authorize": func(ctx context.Context) error {
					_, err := gate.Admit(ctx, token, 0)
					return err
				},
			}
			for name, call := range calls {
				err := call(f.cancelled())
				if err == nil {
					// The store finished first (bbolt ignores ctx), or the
					// call shares a read detached from its caller (authorize).
					if f.reaches && name != "authorize" {
						t.Errorf("%s: the cancellation did not reach the store", name)
					}
					continue
				}
				if code := gateway.AsError(err).Code; code != gateway.CodeClientClosed {
					t.Errorf("%s with the caller gone: %v (code %s), want %s", name, err, code, gateway.CodeClientClosed)
				}
				if errors.Is(err, store.ErrUnavailable) && gateway.AsError(err).Code == gateway.CodeStoreUnavailable {
					t.Errorf("%s: a cancelled caller reported as store_unavailable", name)
				}
			}
			// Nothing remembered: with the clock frozen, a failure held by
			// the status cache would still be served now.
			for name, call := range calls {
				if err := call(context.Background()); err != nil {
					t.Errorf("%s after a cancelled one: %v", name, err)
				}
			}
		})
	}
}

// EnsureKeys called by a caller that leaves while the ring loads does not
// hold the next caller off for its once-a-second retry.
func TestCancelledKeyLoadIsNotRemembered(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newCancelFixture(t, backend)
			svc, _ := f.service(t, false)
			err := svc.EnsureKeys(f.cancelled())
			if (err != nil || f.reaches) && gateway.AsError(err).Code != gateway.CodeClientClosed {
				t.Fatalf("EnsureKeys with the caller gone: %v, want %s", err, gateway.CodeClientClosed)
			}
			if err := svc.EnsureKeys(context.Background()); err != nil {
				t.Fatalf("EnsureKeys after a cancelled one: %v", err)
			}
		})
	}
}

func TestClientClosed(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(live)
	cancel()
	wrapped := errors.Join(store.ErrUnavailable, context.Canceled)
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"no error", gone, nil, false},
		{"caller gone, any error", gone, errors.New("i/o timeout"), true},
		{"classified", live, &gateway.Error{Code: gateway.CodeClientClosed}, true},
		// Someone else's cancellation (a shared call's) is a failure for a
		// caller still waiting.
		{"unclassified cancellation, caller here", live, wrapped, false},
		{"store_unavailable, caller here", live, &gateway.Error{Code: gateway.CodeStoreUnavailable}, false},
	} {
		if got := gateway.ClientClosed(c.ctx, c.err); got != c.want {
			t.Errorf("%s: ClientClosed = %v, want %v", c.name, got, c.want)
		}
	}
}

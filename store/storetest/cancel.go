package storetest

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// A caller that goes away (an HTTP client that hung up, a deadline of its
// own) is not a store outage: the call returns its context's error, never
// store.ErrUnavailable, and changes nothing.

// Stall is a second handle on a store's data whose backend can be made to
// stop answering, the way a hung server or a dead network does.
type Stall struct {
	// Store reads and writes the same data as the store Run opened. Its own
	// timeout (how long it waits for an answer before reporting
	// store.ErrUnavailable) should be short, since the tests wait for it,
	// but well above callerDeadline.
	Store store.Store
	// Hold makes the backend stop answering until release is called (at
	// the latest when the test ends). waiting is closed once a call is
	// waiting for an answer.
	Hold func() (waiting <-chan struct{}, release func())
}

// WithStall gives Run a way to open a Stall on s's data, so a call can be
// cancelled while it waits on the backend.
func WithStall(stall func(t *testing.T, s store.Store) Stall) Option {
	return func(c *config) { c.stall = stall }
}

// GoneCaller is a context whose caller has gone, and the error a call made
// with it must return (errors.Is) instead of one wrapping
// store.ErrUnavailable.
type GoneCaller struct {
	Name string // "cancelled", ...
	Ctx  func() context.Context
	Want error
}

// GoneCallers returns the contexts of callers gone before the call: one
// cancelled, one past its own deadline. Tests beyond the suite (the status
// cache's) use them too.
func GoneCallers(t *testing.T) []GoneCaller {
	return []GoneCaller{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"past its deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	}
}

// fixture is what the cancellation tests write before calling with a
// context the caller ends, to show afterwards that nothing changed.
type fixture struct {
	tok, next store.RefreshFamily
	key       store.SigningKey
}

func writeFixture(t *testing.T, s store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	put(t, s, sampleState())
	issued := now()
	f := fixture{
		tok: family("famX", issued),
		key: signingKey("k1", t0),
	}
	f.next = rotated(f.tok, 1, issued.Add(time.Minute))
	if err := s.PutRefreshFamily(ctx, f.tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSigningKey(ctx, f.key, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEvent{At: t0, Actor: "admin", Action: store.AuditLicenseLocked, LicenseID: "lic_1"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// unchanged fails the test unless s holds exactly the fixture.
func (f fixture) unchanged(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	want := sampleState()
	want.License.Version, want.License.Counted = 1, true
	if got := read(t, s, "lic_1"); !reflect.DeepEqual(got, want) {
		t.Errorf("lic_1 changed:\n%+v\nwant\n%+v", got, want)
	}
	if got := read(t, s, "lic_new"); got.License != nil {
		t.Errorf("lic_new was created: %+v", got.License)
	}
	if list, err := s.ListLicenses(ctx, "", 10); err != nil || len(list) != 1 {
		t.Errorf("ListLicenses = %d licences, %v; want lic_1 only", len(list), err)
	}
	if rf, err := s.RefreshFamily(ctx, f.tok.ID); err != nil || !reflect.DeepEqual(*rf, f.tok) {
		t.Errorf("refresh family = %+v, %v; want it stored and not rotated", rf, err)
	}
	if _, err := s.RefreshFamily(ctx, "famY"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refresh family famY = %v, want ErrNotFound", err)
	}
	if keys, err := s.SigningKeys(ctx); err != nil || !reflect.DeepEqual(keyIDs(keys), []string{f.key.ID}) {
		t.Errorf("signing keys = %v, %v; want [%s]", keyIDs(keys), err, f.key.ID)
	}
	if _, err := s.Idempotent(ctx, "idem"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("idempotency record = %v, want ErrNotFound", err)
	}
	if evs, err := s.Audit(ctx, store.AuditQuery{Limit: 10}); err != nil || len(evs) != 1 {
		t.Errorf("audit log = %d events, %v; want 1", len(evs), err)
	}
	if got, err := s.Daily(ctx, []string{"activations"}, t0, t0); err != nil || got["activations"][0] != 0 {
		t.Errorf("per-day count = %v, %v; want none", got, err)
	}
}

// everyCall calls every method of s with ctx, each to read or change what
// writeFixture wrote.
func (f fixture) everyCall(s store.Store) map[string]func(ctx context.Context) error {
	calls := optionalCalls(s)
	maps.Copy(calls, map[string]func(ctx context.Context) error{
		"LicenseState": func(ctx context.Context) error { _, err := s.LicenseState(ctx, "lic_1"); return err },
		"ListLicenses": func(ctx context.Context) error { _, err := s.ListLicenses(ctx, "", 10); return err },
		"UpdateLicense": func(ctx context.Context) error {
			_, err := s.UpdateLicense(ctx, "lic_1", suspend)
			return err
		},
		"UpdateLicense(new)": func(ctx context.Context) error {
			_, err := s.UpdateLicense(ctx, "lic_new", func(*store.LicenseState) (*store.LicenseState, error) { return license("lic_new"), nil })
			return err
		},
		"InstallationLicense": func(ctx context.Context) error { _, err := s.InstallationLicense(ctx, "ins_1"); return err },
		"PutRefreshFamily":    func(ctx context.Context) error { return s.PutRefreshFamily(ctx, family("famY", f.tok.IssuedAt)) },
		"RefreshFamily":       func(ctx context.Context) error { _, err := s.RefreshFamily(ctx, f.tok.ID); return err },
		"RotateRefreshFamily": func(ctx context.Context) error {
			_, err := s.RotateRefreshFamily(ctx, f.tok.Current, f.next)
			return err
		},
		"DeleteRefreshFamily": func(ctx context.Context) error { return s.DeleteRefreshFamily(ctx, f.tok.ID) },
		"SigningKeys":         func(ctx context.Context) error { _, err := s.SigningKeys(ctx); return err },
		"AddSigningKey": func(ctx context.Context) error {
			_, err := s.AddSigningKey(ctx, signingKey("k2", t0.Add(time.Hour)), t0.Add(time.Hour))
			return err
		},
		"Idempotent": func(ctx context.Context) error { _, err := s.Idempotent(ctx, "idem"); return err },
		"PutIdempotent": func(ctx context.Context) error {
			_, err := s.PutIdempotent(ctx, "idem", []byte("answer"), time.Hour)
			return err
		},
		"ClaimDue": func(ctx context.Context) error {
			_, err := s.ClaimDue(ctx, t0.Add(1000*time.Hour), 10, time.Minute)
			return err
		},
		"DueStats":     func(ctx context.Context) error { _, err := s.DueStats(ctx, t0); return err },
		"NextDue":      func(ctx context.Context) error { _, err := s.NextDue(ctx); return err },
		"AcquireLease": func(ctx context.Context) error { _, err := s.AcquireLease(ctx, "l", "a", t0, time.Minute); return err },
		"AppendAudit": func(ctx context.Context) error {
			return s.AppendAudit(ctx, store.AuditEvent{At: t0, Actor: "admin", Action: store.AuditLicenseSuspended, LicenseID: "lic_1"})
		},
		"Audit": func(ctx context.Context) error { _, err := s.Audit(ctx, store.AuditQuery{Limit: 10}); return err },
		"OutboxEntries(pending)": func(ctx context.Context) error {
			_, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 10})
			return err
		},
		"OutboxEntries(failed)": func(ctx context.Context) error {
			_, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
			return err
		},
		"Ping": func(ctx context.Context) error { return s.Ping(ctx) },
		"Lookup": func(ctx context.Context) error {
			_, err := s.Lookup(ctx, store.RefTerm("s", "order", "1"))
			return err
		},
		"Asked": func(ctx context.Context) error { _, err := s.Asked(ctx, 10); return err },
		"RecordSeen": func(ctx context.Context) error {
			return s.RecordSeen(ctx, []store.Seen{{LicenseID: "lic_1", InstallationID: "ins_1", At: t0.Add(time.Hour)}})
		},
		"AddQuota": func(ctx context.Context) error {
			_, err := s.AddQuota(ctx, []store.QuotaDelta{{LicenseID: "lic_1", InstallationID: "ins_1", Window: t0, Period: time.Minute, N: 1}})
			return err
		},
		"AddDaily": func(ctx context.Context) error {
			return s.AddDaily(ctx, []store.DailyDelta{{Day: t0, Series: "activations", N: 1}})
		},
		"Daily":    func(ctx context.Context) error { _, err := s.Daily(ctx, []string{"activations"}, t0, t0); return err },
		"Versions": func(ctx context.Context) error { _, err := s.Versions(ctx, "converter-pro"); return err },
	})
	return calls
}

func suspend(st *store.LicenseState) (*store.LicenseState, error) {
	st.License.Status = store.LicenseSuspended
	return st, nil
}

// wantCallerErr fails the test unless err is the caller's context error
// and not an outage.
func wantCallerErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s = %v; want %v, not ErrUnavailable", what, err, want)
	}
}

// testCallerGone: every method called with a context its caller has ended
// already (cancelled, or past its own deadline), or ends as soon as the
// store first looks at it, returns that context's error, not
// ErrUnavailable, and writes nothing (no change notice either).
func testCallerGone(t *testing.T, h *harness) {
	s := h.open(t)
	f := writeFixture(t, s)
	feed := subscribe(t, s)
	contexts := append(GoneCallers(t), GoneCaller{"cancelled once looked at", func() context.Context { return cancelOnLook(t) }, context.Canceled})
	for _, c := range contexts {
		for name, call := range f.everyCall(s) {
			wantCallerErr(t, name+" with a context "+c.Name, call(c.Ctx()), c.Want)
		}
	}
	f.unchanged(t, s)
	if got := settle(t, s, feed, "lic_sentinel"); announced(got, "lic_1") || announced(got, "lic_new") {
		t.Errorf("a call whose caller was gone announced a change: %+v", got)
	}
}

// testCallerGoneWhileDeciding: a caller that goes away while UpdateLicense's
// fn decides (after the read, before the write) gets its context's error,
// and the state fn returned is not written.
func testCallerGoneWhileDeciding(t *testing.T, h *harness) {
	s := h.open(t)
	f := writeFixture(t, s)
	feed := subscribe(t, s)
	for _, id := range []string{"lic_1", "lic_new"} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := s.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
			cancel()
			if st.License == nil {
				return license(id), nil
			}
			return suspend(st)
		})
		wantCallerErr(t, "UpdateLicense("+id+") cancelled in fn", err, context.Canceled)
	}
	f.unchanged(t, s)
	if got := settle(t, s, feed, "lic_sentinel"); announced(got, "lic_1") || announced(got, "lic_new") {
		t.Errorf("an update whose caller went away announced a change: %+v", got)
	}
}

// testCallerGoneMidRead: a call waiting on a backend that has stopped
// answering returns the caller's context error once the caller cancels or
// its own deadline passes, and ErrUnavailable when only the store's own
// timeout ends the wait (that is an outage).
func testCallerGoneMidRead(t *testing.T, h *harness) {
	if h.cfg.stall == nil {
		t.Skip("the backend offers no way to hold a call waiting on it (WithStall)")
	}
	s := h.open(t)
	f := writeFixture(t, s)
	st := h.cfg.stall(t, s)
	calls := f.everyCall(st.Store)
	for _, name := range []string{"LicenseState", "ListLicenses", "UpdateLicense", "PutRefreshFamily"} {
		call := calls[name]
		t.Run(name, func(t *testing.T) {
			// Cancelled by the caller while waiting.
			waiting, release := st.Hold()
			ctx, cancel := context.WithCancel(context.Background())
			done := goCall(ctx, call)
			receiveWithin(t, waiting, "a call waiting on the held backend")
			cancel()
			wantCallerErr(t, name+" cancelled while waiting", receiveWithin(t, done, name+" to return after cancel"), context.Canceled)
			release()

			// The caller's own deadline, shorter than the store's timeout.
			_, release = st.Hold()
			ctx, cancel = context.WithTimeout(context.Background(), callerDeadline)
			wantCallerErr(t, name+" past the caller's deadline", call(ctx), context.DeadlineExceeded)
			cancel()
			release()

			// Only the store's own timeout: an outage.
			_, release = st.Hold()
			err := call(context.Background())
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s on a backend that does not answer = %v, want ErrUnavailable", name, err)
			}
			release()
		})
	}
	f.unchanged(t, s)
}

// callerDeadline is the caller's own deadline in testCallerGoneMidRead.
const callerDeadline = 20 * time.Millisecond

func goCall(ctx context.Context, call func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	return done
}

func receiveWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %s", what, wait)
		panic("unreachable")
	}
}

// cancelOnLook returns a context that is live the first time it is looked
// at (Done or Err) and cancelled right after: the caller goes away once
// the store has started on the call.
func cancelOnLook(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &lookCtx{Context: ctx, cancel: cancel}
}

type lookCtx struct {
	context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (c *lookCtx) Done() <-chan struct{} {
	defer c.once.Do(c.cancel)
	return c.Context.Done()
}

func (c *lookCtx) Err() error {
	defer c.once.Do(c.cancel)
	return c.Context.Err()
}

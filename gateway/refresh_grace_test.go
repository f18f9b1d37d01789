package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/tokens"
)

// backends are the stores the refresh tests run on.
var backends = []string{"embedded", "redis"}

// faults is a store.Store whose chosen writes and key reads fail with
// store.ErrUnavailable; a rotation can also fail after it committed (an
// answer lost on its way back).
type faults struct {
	store.Store
	failPutFamily, failUpdate, failKeys, loseRotation atomic.Bool
}

var errInjected = errors.New("injected failure")

func (f *faults) PutRefreshFamily(ctx context.Context, fam store.RefreshFamily) error {
	if f.failPutFamily.Load() {
		return errors.Join(store.ErrUnavailable, errInjected)
	}
	return f.Store.PutRefreshFamily(ctx, fam)
}

func (f *faults) UpdateLicense(ctx context.Context, id string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	if f.failUpdate.Load() {
		return nil, errors.Join(store.ErrUnavailable, errInjected)
	}
	return f.Store.UpdateLicense(ctx, id, fn)
}

func (f *faults) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	if f.failKeys.Load() {
		return nil, errors.Join(store.ErrUnavailable, errInjected)
	}
	return f.Store.SigningKeys(ctx)
}

func (f *faults) RotateRefreshFamily(ctx context.Context, current string, next store.RefreshFamily) (*store.RefreshFamily, error) {
	rec, err := f.Store.RotateRefreshFamily(ctx, current, next)
	if err == nil && f.loseRotation.Load() {
		return nil, errors.Join(store.ErrUnavailable, errInjected)
	}
	return rec, err
}

// refreshFixture is a service on one backend with one active installation
// of one licence, on a fake clock.
type refreshFixture struct {
	t       *testing.T
	backend string
	raw     store.Store // the backend itself
	st      *faults     // what the service uses
	master  *secret.Master
	clk     *testClock
	svc     *Service
	redis   *goredis.Client // nil for embedded
	prefix  string
	closeDB func() string // embedded: closes the store, returns its path
}

func newRefreshFixture(t *testing.T, backend string, grace time.Duration) *refreshFixture {
	t.Helper()
	// The clock starts at the wall clock's reading: Redis expires keys by
	// its own clock.
	f := &refreshFixture{t: t, backend: backend, clk: &testClock{t: time.Now().UTC().Truncate(time.Second)}}
	switch backend {
	case "embedded":
		path := filepath.Join(t.TempDir(), "lg.db")
		e, err := embedded.Open(path, time.Second, embedded.WithClock(f.clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		f.closeDB = func() string { once.Do(func() { e.Close() }); return path }
		t.Cleanup(func() { f.closeDB() })
		f.raw = e
	case "redis":
		srv := redistest.NewServer(t)
		f.redis = goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { f.redis.Close() })
		f.prefix = "lgt:"
		rs := redisstore.New(f.redis, redisstore.Options{KeyPrefix: f.prefix})
		t.Cleanup(func() { rs.Close() })
		f.raw = rs
	}
	f.st = &faults{Store: f.raw}
	var err error
	if f.master, err = secret.New([]byte("refresh-test-secret-0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	f.svc = f.newService(grace)
	if err := f.svc.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := f.clk.Now()
	_, err = f.raw.UpdateLicense(context.Background(), "lic_1", func(s *store.LicenseState) (*store.LicenseState, error) {
		s.License = &store.License{ID: "lic_1", Product: "p", Source: "static", Status: store.LicenseActive, CreatedAt: now}
		s.Installations = []store.Installation{{ID: "ins_1", LicenseID: "lic_1", Product: "p", Domain: "acme.com",
			InstallClass: "production", Status: store.InstallationActive, Generation: 1, CreatedAt: now}}
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newService is another instance on the fixture's store (its key ring not
// loaded yet).
func (f *refreshFixture) newService(grace time.Duration) *Service {
	f.t.Helper()
	svc, err := New(Config{
		Store: f.st, Master: f.master, Issuer: "https://gw.test", AccessTTL: time.Hour,
		RefreshTTL: 24 * time.Hour, RefreshReuseGrace: grace,
		Products:     map[string]*Product{"p": {Name: "p", Rules: policy.Rules{Activations: 1}}},
		ProductOrder: []string{"p"}, Now: f.clk.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

// activate issues the installation's first pair, as activation does.
func (f *refreshFixture) activate() *Tokens {
	f.t.Helper()
	st := f.state()
	toks, err := f.svc.issue(context.Background(), st.License, st.Installations[0])
	if err != nil {
		f.t.Fatal(err)
	}
	return toks
}

func (f *refreshFixture) state() *store.LicenseState {
	f.t.Helper()
	st, err := f.raw.LicenseState(context.Background(), "lic_1")
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *refreshFixture) installation() store.Installation { return f.state().Installations[0] }

func (f *refreshFixture) refresh(token string) *Tokens {
	f.t.Helper()
	toks, err := f.svc.Refresh(context.Background(), token)
	if err != nil {
		f.t.Fatalf("refresh: %v", err)
	}
	return toks
}

// refused checks a refresh is refused with code.
func (f *refreshFixture) refused(token, code string) {
	f.t.Helper()
	_, err := f.svc.Refresh(context.Background(), token)
	if e := AsError(err); e.Code != code {
		f.t.Fatalf("refresh = %v, want %s", err, code)
	}
}

// admitted checks an access token passes the gate.
func (f *refreshFixture) admitted(svc *Service, access string) {
	f.t.Helper()
	svc.cache.InvalidateAll() // the tests run no change feed
	if _, err := svc.Gate(nil).Admit(context.Background(), access, 0); err != nil {
		f.t.Fatalf("gate refused the token: %v", err)
	}
}

func (f *refreshFixture) wantStatus(status string) {
	f.t.Helper()
	if got := f.installation().Status; got != status {
		f.t.Fatalf("installation %s, want %s", got, status)
	}
}

// familyRecords counts the stored records whose key holds family: bbolt
// entries of every bucket (the store is closed to read its file), or Redis
// keys.
func (f *refreshFixture) familyRecords(family string) int {
	f.t.Helper()
	if f.redis != nil {
		keys, err := f.redis.Keys(context.Background(), f.prefix+"*"+family+"*").Result()
		if err != nil {
			f.t.Fatal(err)
		}
		return len(keys)
	}
	db, err := bolt.Open(f.closeDB(), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, _ []byte) error {
				if strings.Contains(string(k), family) {
					n++
				}
				return nil
			})
		})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// Twenty workers sharing one stored refresh token refresh at once: all get
// the same new pair, nothing is revoked, and the pair works.
func TestConcurrentRefreshesShareOneAnswer(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newRefreshFixture(t, backend, 30*time.Second)
			first := f.activate()
			const n = 20
			answers := make([]*Tokens, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i], errs[i] = f.svc.Refresh(context.Background(), first.RefreshToken)
				}()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("refresh %d: %v", i, errs[i])
				}
				if answers[i].AccessToken != answers[0].AccessToken || answers[i].RefreshToken != answers[0].RefreshToken {
					t.Fatalf("refresh %d got another pair than refresh 0", i)
				}
			}
			next := answers[0]
			if next.RefreshToken == first.RefreshToken || next.AccessToken == first.AccessToken {
				t.Fatal("no new pair")
			}
			f.wantStatus(store.InstallationActive)
			f.admitted(f.svc, next.AccessToken)
			// The new token rotates in turn; the one before it is now two
			// rotations old: reuse.
			third := f.refresh(next.RefreshToken)
			f.admitted(f.svc, third.AccessToken)
			f.refused(first.RefreshToken, CodeRefreshTokenReused)
			f.wantStatus(store.InstallationCloned)
		})
	}
}

func TestRefreshReuseGrace(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Run("retry within the grace gets the same pair", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				next := f.refresh(first.RefreshToken)
				f.clk.Advance(30 * time.Second) // the grace's last instant
				again := f.refresh(first.RefreshToken)
				if again.AccessToken != next.AccessToken || again.RefreshToken != next.RefreshToken {
					t.Fatal("a retry within the grace got another pair")
				}
				if again.ExpiresIn != next.ExpiresIn-30 {
					t.Fatalf("expires_in %d on the retry, want %d", again.ExpiresIn, next.ExpiresIn-30)
				}
				f.wantStatus(store.InstallationActive)
				f.admitted(f.svc, again.AccessToken)
			})
			t.Run("preceding token after its successor was used", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				next := f.refresh(first.RefreshToken)
				f.refresh(next.RefreshToken)
				f.refused(first.RefreshToken, CodeRefreshTokenReused)
				f.wantStatus(store.InstallationCloned)
			})
			t.Run("token two rotations old inside the grace", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				second := f.refresh(first.RefreshToken)
				third := f.refresh(second.RefreshToken)
				f.clk.Advance(time.Second)
				f.refused(first.RefreshToken, CodeRefreshTokenReused)
				f.wantStatus(store.InstallationCloned)
				f.refused(third.RefreshToken, CodeTokenRevoked)
			})
			// Issue 20, N6: one lost refresh answer, retried after the
			// grace while its successor was never used, is an honest
			// client: a fresh pair, the unused successor revoked, nothing
			// marked cloned; the successor presented after that is reuse.
			t.Run("grace passed, successor unused", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				lost := f.refresh(first.RefreshToken)
				f.clk.Advance(time.Hour)
				retry := f.refresh(first.RefreshToken)
				if retry.RefreshToken == lost.RefreshToken {
					t.Fatal("the retry after the grace got the lost pair again")
				}
				f.wantStatus(store.InstallationActive)
				f.admitted(f.svc, retry.AccessToken)
				again := f.refresh(retry.RefreshToken)
				f.admitted(f.svc, again.AccessToken)
				f.refused(lost.RefreshToken, CodeRefreshTokenReused)
				f.wantStatus(store.InstallationCloned)
			})
			t.Run("grace off, successor unused", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 0)
				first := f.activate()
				f.refresh(first.RefreshToken)
				retry := f.refresh(first.RefreshToken)
				f.wantStatus(store.InstallationActive)
				f.admitted(f.svc, retry.AccessToken)
			})
			t.Run("grace passed, successor used", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				next := f.refresh(first.RefreshToken)
				f.refresh(next.RefreshToken)
				f.clk.Advance(time.Hour)
				f.refused(first.RefreshToken, CodeRefreshTokenReused)
				f.wantStatus(store.InstallationCloned)
			})
			t.Run("lost answer retried", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				f.st.loseRotation.Store(true)
				if _, err := f.svc.Refresh(context.Background(), first.RefreshToken); AsError(err).Code != CodeStoreUnavailable {
					t.Fatalf("refresh with its answer lost = %v, want store_unavailable", err)
				}
				f.st.loseRotation.Store(false)
				f.clk.Advance(5 * time.Second)
				retry := f.refresh(first.RefreshToken)
				f.wantStatus(store.InstallationActive)
				f.admitted(f.svc, retry.AccessToken)
				f.refresh(retry.RefreshToken)
			})
			t.Run("no successor answer for a deactivated installation", func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				first := f.activate()
				next := f.refresh(first.RefreshToken)
				if err := f.svc.Deactivate(context.Background(), next.AccessToken, ""); err != nil {
					t.Fatal(err)
				}
				f.refused(first.RefreshToken, CodeInstallationInactive)
				f.wantStatus(store.InstallationDeactivated)
			})
		})
	}
}

// The store holds one refresh record per family, however often the
// installation refreshes.
func TestRefreshStorageStaysOneRecord(t *testing.T) {
	const refreshes = 10_000
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newRefreshFixture(t, backend, 30*time.Second)
			toks := f.activate()
			family, err := tokens.RefreshFamily(toks.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < refreshes; i++ {
				f.clk.Advance(time.Minute)
				if toks, err = f.svc.Refresh(context.Background(), toks.RefreshToken); err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
			}
			fam, err := f.raw.RefreshFamily(context.Background(), family)
			if err != nil || fam.Counter != refreshes {
				t.Fatalf("family after %d refreshes: %+v, %v", refreshes, fam, err)
			}
			if n := f.familyRecords(family); n != 1 {
				t.Fatalf("%d stored records for the family after %d refreshes, want 1", n, refreshes)
			}
		})
	}
}

// An instance that cannot sign (its store fails key reads, so its key
// ring cannot load) refuses a refresh without spending the token.
func TestRefreshSigningFailureKeepsToken(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newRefreshFixture(t, backend, 0) // no grace: a spent token would be reuse
			first := f.activate()
			f.st.failKeys.Store(true)
			cold := f.newService(0) // started while the store failed key reads
			if _, err := cold.Refresh(context.Background(), first.RefreshToken); AsError(err).Code != CodeStoreUnavailable {
				t.Fatalf("refresh that cannot sign = %v, want store_unavailable", err)
			}
			f.st.failKeys.Store(false)
			f.clk.Advance(2 * time.Second) // EnsureKeys tries the store again
			next, err := cold.Refresh(context.Background(), first.RefreshToken)
			if err != nil {
				t.Fatalf("retry once signing works: %v", err)
			}
			f.wantStatus(store.InstallationActive)
			f.admitted(f.svc, next.AccessToken)
		})
	}
}

// A move whose new refresh family cannot be stored, or whose commit fails,
// leaves the installation where it was, with its tokens working.
func TestMoveFailureKeepsOldDomainAndTokens(t *testing.T) {
	for _, backend := range backends {
		for _, fault := range []string{"family write", "commit"} {
			t.Run(backend+"/"+fault, func(t *testing.T) {
				f := newRefreshFixture(t, backend, 30*time.Second)
				toks := f.activate()
				before := f.installation()
				if fault == "family write" {
					f.st.failPutFamily.Store(true)
				} else {
					f.st.failUpdate.Store(true)
				}
				_, err := f.svc.Move(context.Background(), MoveRequest{Token: toks.AccessToken, Domain: "new-acme.com"})
				if AsError(err).Code != CodeStoreUnavailable {
					t.Fatalf("move = %v, want store_unavailable", err)
				}
				f.st.failPutFamily.Store(false)
				f.st.failUpdate.Store(false)
				after := f.installation()
				if after.Domain != before.Domain || after.Generation != before.Generation || !after.Active() {
					t.Fatalf("installation after a failed move: %+v", after)
				}
				f.admitted(f.svc, toks.AccessToken)
				next := f.refresh(toks.RefreshToken)
				f.admitted(f.svc, next.AccessToken)

				// The move then succeeds; the new pair works, the old one
				// is revoked, and a spent token of the old family marks
				// nothing (the family is dead already).
				mv, err := f.svc.Move(context.Background(), MoveRequest{Token: next.AccessToken, Domain: "new-acme.com"})
				if err != nil {
					t.Fatal(err)
				}
				if mv.License.Domain != "new-acme.com" {
					t.Fatalf("moved to %q", mv.License.Domain)
				}
				f.admitted(f.svc, mv.AccessToken)
				f.refused(next.RefreshToken, CodeTokenRevoked)
				f.clk.Advance(time.Minute)
				f.refused(toks.RefreshToken, CodeTokenRevoked)
				f.wantStatus(store.InstallationActive)
				f.admitted(f.svc, f.refresh(mv.RefreshToken).AccessToken)
			})
		}
	}
}

// A refused move stores no refresh family.
func TestRefusedMoveStoresNoFamily(t *testing.T) {
	f := newRefreshFixture(t, "redis", 30*time.Second)
	toks := f.activate()
	before, err := f.redis.Keys(context.Background(), f.prefix+"rf:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := f.svc.Move(context.Background(), MoveRequest{Token: toks.AccessToken, Domain: "acme.com"})
		if AsError(err).Code != CodeDomainInUse {
			t.Fatalf("move onto its own domain = %v", err)
		}
	}
	f.st.failUpdate.Store(true)
	if _, err := f.svc.Move(context.Background(), MoveRequest{Token: toks.AccessToken, Domain: "new.com"}); err == nil {
		t.Fatal("move succeeded with failing commits")
	}
	after, err := f.redis.Keys(context.Background(), f.prefix+"rf:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("refresh families %v after refused and failed moves, want %v", after, before)
	}
}

// Review finding on N6: a spent token retried after the grace gets a
// fresh pair a few times (a lost answer, retried), not for ever: the
// fourth time, with none of the pairs it got ever used, it is a copy
// handed around, and reuse.
func TestLateRetriesAreBounded(t *testing.T) {
	f := newRefreshFixture(t, "embedded", 30*time.Second)
	first := f.activate()
	f.refresh(first.RefreshToken)
	for range maxReissues {
		f.clk.Advance(time.Hour)
		f.refresh(first.RefreshToken)
	}
	f.clk.Advance(time.Hour)
	f.refused(first.RefreshToken, CodeRefreshTokenReused)
	f.wantStatus(store.InstallationCloned)
}

package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/upstreams"
)

// shopSource sells several products: a key's prefix names its product
// (BASE-, THEME-, FONT-) and its type (-X: extended). It can be down, and
// can answer that a key was refunded.
type shopSource struct {
	mu       sync.Mutex
	down     bool
	refunded map[string]bool
	calls    int
}

func (*shopSource) Name() string { return "shop" }
func (*shopSource) CanonicalKey(k string) (string, error) {
	for _, p := range []string{"BASE-", "THEME-", "FONT-"} {
		if strings.HasPrefix(k, p) {
			return k, nil
		}
	}
	return "", upstreams.ErrKeyFormat
}
func (s *shopSource) Verify(_ context.Context, r upstreams.Request) upstreams.Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	switch {
	case s.down:
		return upstreams.Verdict{Outcome: upstreams.Unknown, RetryAfter: 30 * time.Second}
	case s.refunded[r.Key]:
		return upstreams.Verdict{Outcome: upstreams.Invalid, Reason: upstreams.Refunded}
	}
	typ := "regular"
	if strings.HasSuffix(r.Key, "-X") {
		typ = "extended"
	}
	product := map[string]string{"BASE": "base", "THEME": "themes", "FONT": "fonts"}[strings.SplitN(r.Key, "-", 2)[0]]
	return upstreams.ValidVerdict(upstreams.Record{Product: product, Type: typ})
}

type addonFixture struct {
	t     *testing.T
	svc   *Service
	store store.Store
	clock *testClock
	src   *shopSource
}

// newAddonFixture serves base (basic for regular, basic and saas for
// extended), its add-on themes (granting "themes") and fonts, an add-on
// of another product (other).
func newAddonFixture(t *testing.T) *addonFixture {
	t.Helper()
	e, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	master, err := secret.New([]byte("gateway-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f := &addonFixture{t: t, store: e, clock: &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, src: &shopSource{refunded: map[string]bool{}}}
	products := map[string]*Product{
		"base":   {Name: "base", Sources: []string{"shop"}, Rules: policy.Rules{Activations: 2}, Entitlements: map[string][]string{"regular": {"basic"}, "extended": {"basic", "saas"}}},
		"themes": {Name: "themes", Sources: []string{"shop"}, Rules: policy.Rules{Activations: 1}, AddonOf: []string{"base"}},
		"other":  {Name: "other", Sources: []string{"shop"}, Rules: policy.Rules{Activations: 1}},
		"fonts":  {Name: "fonts", Sources: []string{"shop"}, Rules: policy.Rules{Activations: 1}, AddonOf: []string{"other"}},
	}
	if err := CheckAddons(products); err != nil {
		t.Fatal(err)
	}
	f.svc, err = New(Config{
		Store: e, Master: master, Now: f.clock.Now, RefreshTTL: 30 * 24 * time.Hour,
		Sources: map[string]upstreams.Source{"shop": f.src}, Products: products,
		ProductOrder: []string{"base", "fonts", "other", "themes"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *addonFixture) activate(key, domain string) *Activation {
	f.t.Helper()
	a, err := f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: domain, ClientIP: "203.0.113.7"})
	if err != nil {
		f.t.Fatalf("activating %s on %s: %v", key, domain, err)
	}
	return a
}

func (f *addonFixture) attach(token, key string) (*AddonAttachment, error) {
	return f.svc.AttachAddon(context.Background(), AddonRequest{Token: token, Key: key, ClientIP: "203.0.113.7"})
}

// ent reads an access token's ent claim (its signature is the gate's
// business; here, what it says).
func ent(t *testing.T, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Ent []string `json:"ent"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Ent
}

// admitWith is a gate with opts's answer to token, after every change
// has been announced.
func (f *addonFixture) admitWith(token string, opts ...GateOption) (Grant, error) {
	f.svc.cache.InvalidateAll()
	return f.svc.Gate(nil, opts...).Admit(context.Background(), token, 0)
}

// activeInstallations counts a licence's active installations.
func (f *addonFixture) activeInstallations(licenseID string) int {
	f.t.Helper()
	st, err := f.store.LicenseState(context.Background(), licenseID)
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, in := range st.Installations {
		if in.Active() {
			n++
		}
	}
	return n
}

func TestAddonAttach(t *testing.T) {
	f := newAddonFixture(t)
	base := f.activate("BASE-1", "acme.com")
	if got := ent(t, base.AccessToken); !slices.Equal(got, []string{"basic"}) {
		t.Fatalf("base token ent %v, want [basic]", got)
	}
	plain := f.activate("BASE-2", "other.com")

	a, err := f.attach(base.AccessToken, "THEME-1")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created || a.Addon.Product != "themes" || !a.Addon.Attached || a.InstallationID != base.InstallationID {
		t.Fatalf("attach answer %+v", a)
	}
	if got := ent(t, a.AccessToken); !slices.Equal(got, []string{"basic", "themes"}) {
		t.Fatalf("new token ent %v, want [basic themes]", got)
	}
	if !slices.Equal(a.License.Entitlements, []string{"basic", "themes"}) {
		t.Fatalf("licence block entitlements %v", a.License.Entitlements)
	}

	themes := WithRequirements(Requirement{Entitlements: []string{"themes"}})
	if _, err := f.admitWith(a.AccessToken, themes); err != nil {
		t.Fatalf("require entitlement themes refused the installation with the add-on: %v", err)
	}
	// The earlier token of the same installation: the gate decides on the
	// installation's entitlements now, not on what a token says.
	if _, err := f.admitWith(base.AccessToken, themes); err != nil {
		t.Fatalf("an earlier token of the installation: %v", err)
	}
	_, err = f.admitWith(plain.AccessToken, themes)
	if e := wantCode(t, err, CodeRequirementNotMet); !strings.Contains(e.Detail, "themes") {
		t.Fatalf("detail %q names no entitlement", e.Detail)
	}
	g, err := f.admitWith(a.AccessToken, WithEntitlementList())
	if err != nil || g.Entitlements != "basic,themes" {
		t.Fatalf("listed entitlements %q, %v", g.Entitlements, err)
	}

	// No second refresh family: the installation's own refresh token
	// stays the one, and its next refresh carries the add-on.
	if a.RefreshToken != "" {
		t.Fatal("the attach started a refresh family beside the installation's")
	}
	r, err := f.svc.Refresh(context.Background(), base.RefreshToken)
	if err != nil || !slices.Equal(ent(t, r.AccessToken), []string{"basic", "themes"}) {
		t.Fatalf("refresh after attach: %v", err)
	}
	base.RefreshToken = r.RefreshToken

	// A retry attaches nothing more.
	again, err := f.attach(a.AccessToken, "THEME-1")
	if err != nil || again.Created {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if n := f.activeInstallations(a.Addon.LicenseID); n != 1 {
		t.Fatalf("the add-on licence holds %d installations after a retry, want 1", n)
	}
	want := []string{"installer installation.created", "installer installation.created", "installer addon.attached"}
	if got := addonAudit(t, f.store); !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

func addonAudit(t *testing.T, s store.Store) []string {
	t.Helper()
	evs, err := s.Audit(context.Background(), store.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Actor+" "+ev.Action)
	}
	return out
}

// Each refusal has its stable code and attaches nothing.
func TestAddonRefusals(t *testing.T) {
	f := newAddonFixture(t)
	base := f.activate("BASE-1", "acme.com")
	if _, err := f.attach(base.AccessToken, "THEME-1"); err != nil {
		t.Fatal(err)
	}
	t.Run("another product's add-on", func(t *testing.T) {
		_, err := f.attach(base.AccessToken, "FONT-1")
		wantCode(t, err, CodeWrongProduct)
	})
	t.Run("not an add-on", func(t *testing.T) {
		_, err := f.attach(base.AccessToken, "BASE-9")
		wantCode(t, err, CodeWrongProduct)
	})
	t.Run("a second licence of the same add-on", func(t *testing.T) {
		_, err := f.attach(base.AccessToken, "THEME-2")
		wantCode(t, err, CodeAddonAttached)
		if st, _ := f.store.LicenseState(context.Background(), f.svc.licenseID("shop", "THEME-2")); st != nil && st.License != nil && len(st.Installations) > 0 {
			t.Fatal("the second licence was given an installation")
		}
	})
	t.Run("an add-on on its own", func(t *testing.T) {
		_, err := f.svc.Activate(context.Background(), ActivateRequest{Key: "THEME-3", Domain: "acme.com"})
		wantCode(t, err, CodeWrongProduct)
	})
	t.Run("source down", func(t *testing.T) {
		other := f.activate("BASE-5", "down.example.com")
		f.src.mu.Lock()
		f.src.down = true
		f.src.mu.Unlock()
		defer func() { f.src.mu.Lock(); f.src.down = false; f.src.mu.Unlock() }()
		_, err := f.attach(other.AccessToken, "THEME-4")
		if e := wantCode(t, err, CodeUpstreamUnavailable); e.RetryAfter <= 0 {
			t.Fatal("no Retry-After")
		}
		st, err := f.store.LicenseState(context.Background(), f.svc.licenseID("shop", "THEME-4"))
		if err != nil || st.License != nil {
			t.Fatalf("something was recorded for the add-on: %+v, %v", st.License, err)
		}
	})
	t.Run("a deactivated installation", func(t *testing.T) {
		gone := f.activate("BASE-6", "gone.example.com")
		if err := f.svc.Deactivate(context.Background(), gone.AccessToken, "203.0.113.7"); err != nil {
			t.Fatal(err)
		}
		_, err := f.attach(gone.AccessToken, "THEME-5")
		wantCode(t, err, CodeInstallationInactive)
	})
	t.Run("the add-on's only slot is used", func(t *testing.T) {
		second := f.activate("BASE-7", "second.example.com")
		_, err := f.attach(second.AccessToken, "THEME-1")
		wantCode(t, err, CodeActivationLimit)
	})
}

// A refunded add-on grants nothing at once and is gone from the next
// token; the base installation is untouched.
func TestAddonRevokedDropsEntitlement(t *testing.T) {
	f := newAddonFixture(t)
	base := f.activate("BASE-1-X", "acme.com")
	a, err := f.attach(base.AccessToken, "THEME-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ChangeLicense(context.Background(), a.Addon.LicenseID, ActionSuspend, "refunded"); err != nil {
		t.Fatal(err)
	}
	_, err = f.admitWith(a.AccessToken, WithRequirements(Requirement{Entitlements: []string{"themes"}}))
	wantCode(t, err, CodeRequirementNotMet)
	if _, err := f.admitWith(a.AccessToken, WithRequirements(Requirement{Entitlements: []string{"saas"}})); err != nil {
		t.Fatalf("the base's own entitlement: %v", err)
	}
	r, err := f.svc.Refresh(context.Background(), base.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if got := ent(t, r.AccessToken); !slices.Equal(got, []string{"basic", "saas"}) {
		t.Fatalf("ent after the add-on's suspension %v", got)
	}
	v, err := f.svc.Status(context.Background(), r.AccessToken)
	if err != nil || len(v.Addons) != 1 || v.Addons[0].Attached || v.Addons[0].Status != store.LicenseSuspended {
		t.Fatalf("status add-ons %+v, %v", v, err)
	}
}

// Deactivating the base frees the add-on's slot (audited); a move keeps
// it, on the new domain.
func TestAddonFollowsItsBase(t *testing.T) {
	f := newAddonFixture(t)
	base := f.activate("BASE-1", "acme.com")
	a, err := f.attach(base.AccessToken, "THEME-1")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := f.svc.Move(context.Background(), MoveRequest{Token: a.AccessToken, Domain: "acme.org", ClientIP: "203.0.113.7"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moved.License.Entitlements, []string{"basic", "themes"}) {
		t.Fatalf("moved installation entitlements %v", moved.License.Entitlements)
	}
	st, _ := f.store.LicenseState(context.Background(), a.Addon.LicenseID)
	if in := st.Installation(a.Addon.InstallationID); in == nil || !in.Active() || in.Domain != "acme.org" {
		t.Fatalf("the add-on after the move: %+v", in)
	}
	if err := f.svc.Deactivate(context.Background(), moved.AccessToken, "203.0.113.7"); err != nil {
		t.Fatal(err)
	}
	if n := f.activeInstallations(a.Addon.LicenseID); n != 0 {
		t.Fatalf("the add-on holds %d slots after its base was deactivated", n)
	}
	audit := addonAudit(t, f.store)
	if last := audit[len(audit)-1]; last != "installer addon.detached" {
		t.Fatalf("last audit entry %q, want the detach (audit %v)", last, audit)
	}
	// The freed slot takes the add-on to another installation.
	next := f.activate("BASE-2", "new.example.com")
	if _, err := f.attach(next.AccessToken, "THEME-1"); err != nil {
		t.Fatalf("attaching the freed add-on: %v", err)
	}
}

// A detach lost to a crash (the base deactivated, its add-on's record
// untouched) is repaired by the add-on's next attach, not charged to the
// buyer.
func TestAddonLostDetachRepaired(t *testing.T) {
	f := newAddonFixture(t)
	base := f.activate("BASE-1", "acme.com")
	a, err := f.attach(base.AccessToken, "THEME-1")
	if err != nil {
		t.Fatal(err)
	}
	// Deactivate the base without its detach: only the base's write.
	_, err = f.store.UpdateLicense(context.Background(), base.License.ID, func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installation(base.InstallationID).Status = store.InstallationDeactivated
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	next := f.activate("BASE-2", "new.example.com")
	if _, err := f.attach(next.AccessToken, "THEME-1"); err != nil {
		t.Fatalf("attaching an add-on whose old base is gone: %v", err)
	}
	st, _ := f.store.LicenseState(context.Background(), a.Addon.LicenseID)
	if in := st.Installation(a.Addon.InstallationID); in.Active() {
		t.Fatal("the add-on's stale attachment is still active")
	}
}

func TestTypeQuota(t *testing.T) {
	f := newAddonFixture(t)
	regular := f.activate("BASE-1", "acme.com")
	extended := f.activate("BASE-2-X", "big.example.com")
	opts := []GateOption{WithQuota(Quota{Limit: 100, Period: 24 * time.Hour}),
		WithTypeQuotas(map[string]Quota{"extended": {Limit: 10000, Period: 24 * time.Hour}})}
	g := f.svc.Gate(nil, opts...)
	for _, c := range []struct {
		token string
		limit int64
	}{{regular.AccessToken, 100}, {extended.AccessToken, 10000}} {
		grant, err := g.Admit(context.Background(), c.token, 0)
		if err != nil || grant.Quota.Limit != c.limit || grant.Quota.Remaining != c.limit-1 {
			t.Fatalf("quota %+v, %v; want limit %d", grant.Quota, err, c.limit)
		}
	}
	only := f.svc.Gate(nil, WithTypeQuotas(map[string]Quota{"extended": {Limit: 5, Period: time.Hour}}))
	if grant, err := only.Admit(context.Background(), regular.AccessToken, 0); err != nil || grant.Quota.Limit != 0 {
		t.Fatalf("a type without a quota: %+v, %v", grant.Quota, err)
	}
}

func TestParseEntitlementsAndQuotas(t *testing.T) {
	ents, err := ParseEntitlements([]string{"basic", "extended=basic,saas"})
	if err != nil || !slices.Equal(ents["*"], []string{"basic"}) || !slices.Equal(ents["extended"], []string{"basic", "saas"}) {
		t.Fatalf("%v, %v", ents, err)
	}
	for _, bad := range [][]string{nil, {"a b"}, {"=x"}, {"regular=x", "regular=y"}, {"regular="}} {
		if _, err := ParseEntitlements(bad); err == nil {
			t.Errorf("ParseEntitlements(%q) accepted", bad)
		}
	}
	q, by, err := ParseQuotaArgs([]string{"100/d", "extended=1000/h"})
	if err != nil || q != "100/d" || by["extended"] != "1000/h" {
		t.Fatalf("%q %v %v", q, by, err)
	}
	for _, bad := range [][]string{nil, {"1/d", "2/d"}, {"extended=x"}, {"=1/d"}} {
		if _, _, err := ParseQuotaArgs(bad); err == nil {
			t.Errorf("ParseQuotaArgs(%q) accepted", bad)
		}
	}
}

func TestCheckAddons(t *testing.T) {
	for name, products := range map[string]map[string]*Product{
		"unknown base": {"a": {Name: "a", AddonOf: []string{"x"}}},
		"itself":       {"a": {Name: "a", AddonOf: []string{"a"}}},
		"chain":        {"a": {Name: "a"}, "b": {Name: "b", AddonOf: []string{"a"}}, "c": {Name: "c", AddonOf: []string{"b"}}},
		"release_idle": {"a": {Name: "a"}, "b": {Name: "b", AddonOf: []string{"a"}, Rules: policy.Rules{ReleaseIdle: time.Hour}}},
	} {
		if err := CheckAddons(products); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Review findings: a move cannot take an add-on over its licence's slots;
// an attach whose base never listed it is taken back after linkGrace; a
// buyer cannot mark an add-on's installation staging to free its slot.
func TestAddonSlotsHold(t *testing.T) {
	f := newAddonFixture(t)
	ctx := context.Background()
	prod := f.activate("BASE-1", "acme.com")
	local := f.activate("BASE-2", "shop.test")
	a, err := f.attach(prod.AccessToken, "THEME-1")
	if err != nil {
		t.Fatal(err)
	}
	free, err := f.attach(local.AccessToken, "THEME-1") // local: free beside the production slot
	if err != nil {
		t.Fatalf("the add-on on a local install: %v", err)
	}
	moved, err := f.svc.Move(ctx, MoveRequest{Token: free.AccessToken, Domain: "second.example.com", ClientIP: "203.0.113.7"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(moved.License.Entitlements, "themes") {
		t.Fatal("the moved installation keeps an add-on its licence has no production slot for")
	}
	if n := f.activeInstallations(a.Addon.LicenseID); n != 1 {
		t.Fatalf("the add-on holds %d installations after the move, want 1", n)
	}

	_, err = f.svc.MarkStagingOwned(ctx, "buyer:test", []string{a.Addon.LicenseID}, a.Addon.LicenseID, a.Addon.InstallationID)
	wantCode(t, err, CodeDomainNotAllowed)

	// The base's side never written (a crash between the two writes): the
	// slot is the add-on's again once linkGrace has passed.
	_, err = f.store.UpdateLicense(ctx, prod.License.ID, func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installation(prod.InstallationID).Addons = nil
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	third := f.activate("BASE-3", "third.example.com")
	_, err = f.attach(third.AccessToken, "THEME-1")
	wantCode(t, err, CodeActivationLimit) // within the grace: the first attach may still be linking
	f.clock.Advance(2 * linkGrace)
	if _, err := f.attach(third.AccessToken, "THEME-1"); err != nil {
		t.Fatalf("after the grace the unlinked attachment still holds the slot: %v", err)
	}
}

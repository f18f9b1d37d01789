package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func TestMoveKeepsTheInstallationAndReplacesItsTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.activate("KEY-1", "old.com")
	moved, err := f.svc.Move(ctx, MoveRequest{Token: first.AccessToken, Domain: "https://www.New.com/shop"})
	if err != nil {
		t.Fatal(err)
	}
	if moved.InstallationID != first.InstallationID || moved.License.Domain != "new.com" {
		t.Fatalf("moved to %s as %s, want new.com as %s", moved.License.Domain, moved.InstallationID, first.InstallationID)
	}
	if moved.License.ActivationsUsed != 1 {
		t.Fatalf("a move used another slot: %+v", moved.License)
	}
	if _, err := f.admit(first.AccessToken); err == nil {
		t.Fatal("the access token from before the move still admits")
	}
	// The moved-from family is deleted: its token is unknown now.
	wantCode(t, firstErr(f.svc.Refresh(ctx, first.RefreshToken)), CodeInvalidToken)
	g, err := f.admit(moved.AccessToken)
	if err != nil || g.Domain != "new.com" {
		t.Fatalf("new token: %+v, %v", g, err)
	}
	if got := f.audited(); !slices.Contains(got, "installer installation.moved") {
		t.Fatalf("audit %v has no move", got)
	}
	// The old domain is free again: a new installation may take it.
	if a := f.activate("KEY-2", "old.com"); !a.Created {
		t.Fatal("old domain not free")
	}
}

func TestMoveCooldown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	b, err := f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "b.com"})
	if err != nil {
		t.Fatal(err)
	}
	// The access tokens expire meanwhile: the installer moves by its
	// refresh token.
	f.clock.Advance(testCooldown - time.Hour)
	_, err = f.svc.Move(ctx, MoveRequest{Token: b.RefreshToken, Domain: "c.com"})
	if e := wantCode(t, err, CodeMoveCooldown); e.RetryAfter != time.Hour {
		t.Fatalf("Retry-After %s, want the hour left of the cooldown", e.RetryAfter)
	}
	f.clock.Advance(time.Hour)
	c, err := f.svc.Move(ctx, MoveRequest{Token: b.RefreshToken, Domain: "c.com"})
	if err != nil {
		t.Fatalf("move after the cooldown: %v", err)
	}
	if c.License.Domain != "c.com" {
		t.Fatalf("domain %s", c.License.Domain)
	}
}

// A refused move changes nothing: its tokens keep working and no cooldown
// starts.
func TestMoveRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.svc.cfg.Products["p"].Rules.Activations = 2
	a := f.activate("KEY-1", "a.com")
	f.activate("KEY-1", "b.com")

	_, err := f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "a.com"})
	wantCode(t, err, CodeDomainInUse) // its own domain: no second token family
	_, err = f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "www.b.com"})
	wantCode(t, err, CodeDomainInUse) // the licence's other installation's
	_, err = f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "not a domain"})
	wantCode(t, err, CodeValidationFailed)
	_, err = f.svc.Move(ctx, MoveRequest{Token: "garbage", Domain: "c.com"})
	wantCode(t, err, CodeInvalidToken)

	if _, err := f.admit(a.AccessToken); err != nil {
		t.Fatalf("a refused move revoked the token: %v", err)
	}
	if _, err := f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "c.com"}); err != nil {
		t.Fatalf("refused moves started the cooldown: %v", err)
	}
}

// Move and status require a licence in good standing; deactivation only a
// live token, so a buyer can free the slot of a suspended licence.
func TestSuspendedLicence(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	if _, err := f.svc.ChangeLicense(ctx, a.License.ID, ActionSuspend, "chargeback"); err != nil {
		t.Fatal(err)
	}
	_, err := f.admit(a.AccessToken)
	wantCode(t, err, CodeLicenseSuspended)
	_, err = f.svc.Move(ctx, MoveRequest{Token: a.AccessToken, Domain: "b.com"})
	wantCode(t, err, CodeLicenseSuspended)
	_, err = f.svc.Status(ctx, a.AccessToken)
	wantCode(t, err, CodeLicenseSuspended)
	if err := f.svc.Deactivate(ctx, a.AccessToken, ""); err != nil {
		t.Fatalf("deactivating under a suspended licence: %v", err)
	}
}

func TestDeactivate(t *testing.T) {
	for _, by := range []string{"access token", "refresh token"} {
		t.Run(by, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			a := f.activate("KEY-1", "a.com")
			cred := a.AccessToken
			if by == "refresh token" {
				cred = a.RefreshToken
			}
			if err := f.svc.Deactivate(ctx, cred, ""); err != nil {
				t.Fatal(err)
			}
			_, err := f.admit(a.AccessToken)
			wantCode(t, err, CodeInstallationInactive)
			wantCode(t, firstErr(f.svc.Refresh(ctx, a.RefreshToken)), CodeInstallationInactive)
			wantCode(t, f.svc.Deactivate(ctx, cred, ""), CodeInstallationInactive)
			if got := f.audited(); !slices.Equal(got, []string{"installer installation.created", "installer installation.deactivated"}) {
				t.Fatalf("audit %v", got)
			}
			// The slot is free; the same domain gets a new installation.
			if b := f.activate("KEY-1", "a.com"); !b.Created || b.InstallationID == a.InstallationID {
				t.Fatalf("reactivation after deactivation: %+v", b)
			}
		})
	}
}

// The author's deactivation is the installer's, idempotent: a second one
// answers the installation as it is and audits nothing.
func TestAdminDeactivateInstallation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	for i := 0; i < 2; i++ {
		in, d, err := f.svc.DeactivateInstallation(ctx, a.InstallationID, "  server gone  ")
		if err != nil {
			t.Fatal(err)
		}
		if in.Status != store.InstallationDeactivated || in.DeactivatedAt == nil || d.License.ActivationsUsed != 0 {
			t.Fatalf("after deactivation %d: %+v, %+v", i+1, in, d.License)
		}
	}
	evs, err := f.store.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Actor != ActorAdmin || evs[1].Reason != "server gone" || evs[1].Detail != "a.com" {
		t.Fatalf("audit %+v", evs)
	}
	_, err = f.admit(a.AccessToken)
	wantCode(t, err, CodeInstallationInactive)
	if _, _, err := f.svc.DeactivateInstallation(ctx, "ins_nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown installation: %v", err)
	}
}

func TestLookupKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	d, err := f.svc.LookupKey(ctx, "  KEY-1 ")
	if err != nil || d.License.ID != a.License.ID || len(d.Installations) != 1 {
		t.Fatalf("lookup: %+v, %v", d, err)
	}
	for _, key := range []string{"KEY-2", "not-a-key", ""} {
		if _, err := f.svc.LookupKey(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup %q: %v, want ErrNotFound", key, err)
		}
	}
}

func firstErr[T any](_ T, err error) error { return err }

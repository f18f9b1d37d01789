package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// Acceptance 3 of issue 12 on a fake clock: with release_idle 1h, an
// installation unused for an hour frees its slot (a new domain activates;
// the old token gets installation_released), one used every 10 minutes
// keeps it, and the sweep releases idle installations on its own.
func TestReleaseIdle(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			f.svc.cfg.Products["p"].Rules.ReleaseIdle = time.Hour
			ctx := context.Background()
			gate := f.svc.Gate(nil)
			use := func(a *Activation) {
				t.Helper()
				if _, err := gate.Admit(ctx, a.AccessToken, 0); err != nil {
					t.Fatalf("gate refused %s: %v", a.License.Domain, err)
				}
			}

			unused := f.activate("KEY-IDLE", "old.com")
			busy := f.activate("KEY-BUSY", "busy.com")
			swept := f.activate("KEY-SWEPT", "swept.com")
			for i := 0; i < 6; i++ {
				f.clock.Advance(10 * time.Minute)
				use(busy)
				if err := f.svc.FlushLastSeen(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// An hour on: the unused installation's slot is free.
			moved := f.activate("KEY-IDLE", "new.com")
			if !moved.Created {
				t.Fatal("the new domain did not get a new installation")
			}
			_, err := f.admit(unused.AccessToken)
			wantCode(t, err, CodeInstallationReleased)
			if _, err := f.admit(moved.AccessToken); err != nil {
				t.Fatalf("the new installation's token: %v", err)
			}
			d, err := f.svc.License(ctx, unused.License.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Installations[0].Status != store.InstallationReleased || d.License.ActivationsUsed != 1 {
				t.Fatalf("after the release: %+v, %d used", d.Installations[0], d.License.ActivationsUsed)
			}
			// Used every 10 minutes: the slot stays taken.
			_, err = f.svc.Activate(ctx, ActivateRequest{Key: "KEY-BUSY", Domain: "other.com"})
			wantCode(t, err, CodeActivationLimit)
			use(busy)

			// The sweep releases the idle one nobody needed the slot of,
			// and only that one.
			n, err := f.svc.SweepIdle(ctx)
			if err != nil || n != 1 {
				t.Fatalf("sweep released %d (%v), want 1", n, err)
			}
			_, err = f.admit(swept.AccessToken)
			wantCode(t, err, CodeInstallationReleased)
			if _, err := f.admit(busy.AccessToken); err != nil {
				t.Fatalf("the busy installation after the sweep: %v", err)
			}
			if n, err := f.svc.SweepIdle(ctx); err != nil || n != 0 {
				t.Fatalf("a second sweep released %d (%v)", n, err)
			}
			if got := slices.DeleteFunc(f.audited(), func(a string) bool { return a != "gateway installation.released" }); len(got) != 2 {
				t.Fatalf("installation.released events: %d, want 2", len(got))
			}
			// A released installation cannot refresh either.
			_, err = f.svc.Refresh(ctx, unused.RefreshToken)
			wantCode(t, err, CodeInstallationReleased)
		})
	}
}

// Issue 20, L5: a refresh and a status read are uses too: an installation
// that only refreshes its token (or shows its licence) is not idle.
func TestRefreshAndStatusCountAsUse(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.Products["p"].Rules.ReleaseIdle = time.Hour
	ctx := context.Background()
	a := f.activate("KEY-1", "buyer.com")
	tok := a.Tokens
	for i := range 6 {
		f.clock.Advance(10 * time.Minute)
		if i%2 == 0 {
			next, err := f.svc.Refresh(ctx, tok.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			tok = *next
		} else if _, err := f.svc.Status(ctx, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.FlushLastSeen(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.svc.SweepIdle(ctx); err != nil || n != 0 {
		t.Fatalf("the sweep released %d (%v); an installation refreshing every 20 minutes is in use", n, err)
	}
	_, err := f.svc.Activate(ctx, ActivateRequest{Key: "KEY-1", Domain: "other.com"})
	wantCode(t, err, CodeActivationLimit)
}

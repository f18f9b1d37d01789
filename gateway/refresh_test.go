package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// A refresh spends its token and hands out the next of the same family;
// the new access token admits.
func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	f.clock.Advance(2 * time.Hour) // the access token has expired
	_, err := f.admit(a.AccessToken)
	wantCode(t, err, CodeInvalidToken)

	next, err := f.svc.Refresh(ctx, a.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == a.RefreshToken || next.AccessToken == a.AccessToken || next.InstallationID != a.InstallationID {
		t.Fatalf("refresh did not rotate: %+v", next)
	}
	if _, err := f.admit(next.AccessToken); err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}
	again, err := f.svc.Refresh(ctx, next.RefreshToken)
	if err != nil {
		t.Fatalf("the successor does not refresh: %v", err)
	}
	first, _ := tokens.RefreshFamily(a.RefreshToken)
	if third, _ := tokens.RefreshFamily(again.RefreshToken); third != first {
		t.Fatalf("refresh started family %s, want %s", third, first)
	}
}

// A spent refresh token presented again after its successor was used
// means two copies of one installation: it is marked cloned, once, and
// every token it holds stops.
func TestRefreshReuseMarksTheInstallationCloned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.activate("KEY-1", "a.com")
	prev, err := f.svc.Refresh(ctx, a.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	next, err := f.svc.Refresh(ctx, prev.RefreshToken) // the successor used
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	for i := 0; i < 2; i++ {
		wantCode(t, firstErr(f.svc.Refresh(ctx, a.RefreshToken)), CodeRefreshTokenReused)
	}
	wantCode(t, firstErr(f.svc.Refresh(ctx, next.RefreshToken)), CodeTokenRevoked)
	_, err = f.admit(next.AccessToken)
	wantCode(t, err, CodeTokenRevoked)
	in, _, err := f.svc.Installation(ctx, a.InstallationID)
	if err != nil || in.Status != store.InstallationCloned {
		t.Fatalf("installation %+v, %v; want cloned", in, err)
	}
	if got := f.audited(); !slices.Equal(got, []string{"installer installation.created", "gateway installation.cloned"}) {
		t.Fatalf("audit %v, want one clone event", got)
	}
	// The buyer's way back: activating again makes a new installation.
	re := f.activate("KEY-1", "a.com")
	if !re.Created || re.InstallationID == a.InstallationID {
		t.Fatalf("re-activation after a clone: %+v", re)
	}
	if _, err := f.admit(re.AccessToken); err != nil {
		t.Fatalf("re-activated token: %v", err)
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	f := newFixture(t)
	a := f.activate("KEY-1", "a.com")
	f.clock.Advance(f.svc.cfg.RefreshTTL)
	e := wantCode(t, firstErr(f.svc.Refresh(context.Background(), a.RefreshToken)), CodeInvalidToken)
	if e.Detail != "The refresh token has expired; activate the licence again." {
		t.Fatalf("detail %q", e.Detail)
	}
	wantCode(t, firstErr(f.svc.Refresh(context.Background(), "rt_garbage")), CodeInvalidToken)
}

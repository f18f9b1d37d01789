package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func TestLicenseEvents(t *testing.T) {
	at := func(y int) *time.Time { v := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); return &v }
	base := store.License{ID: "lic_1", Product: "p", Source: "s", Status: store.LicenseActive, ExpiresAt: at(2030), SupportUntil: at(2030)}
	with := func(f func(*store.License)) *store.License { l := base; f(&l); return &l }
	for _, tc := range []struct {
		name string
		next *store.License
		want string
	}{
		{"unchanged", with(func(*store.License) {}), "[]"},
		{"expired", with(func(l *store.License) { l.Status = store.LicenseExpired }), "[license.expired]"},
		{"flagged", with(func(l *store.License) { l.Status = store.LicenseFlagged }), "[license.flagged]"},
		{"renewed", with(func(l *store.License) { l.ExpiresAt = at(2031) }), "[license.renewed]"},
		{"support renewed", with(func(l *store.License) { l.SupportUntil = at(2031) }), "[license.renewed]"},
		{"no longer expires", with(func(l *store.License) { l.ExpiresAt = nil }), "[license.renewed]"},
		{"shortened", with(func(l *store.License) { l.ExpiresAt = at(2029) }), "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, ev := range licenseEvents(&base, tc.next, ActorGateway) {
				got = append(got, ev.Action)
				if ev.LicenseID != "lic_1" || ev.Product != "p" || ev.Source != "s" {
					t.Errorf("event %+v lacks the licence's ids", ev)
				}
			}
			if fmt.Sprint(got) == "[]" || got == nil {
				got = []string{}
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
		})
	}
	flagged := with(func(l *store.License) { l.Status = store.LicenseFlagged })
	if evs := licenseEvents(flagged, &base, ActorGateway); len(evs) != 1 || evs[0].Action != store.AuditLicenseReinstated {
		t.Fatalf("flagged -> active: %+v", evs)
	}
	if evs := licenseEvents(nil, &base, ActorGateway); len(evs) != 0 {
		t.Fatalf("a new licence: %+v", evs)
	}
}

// Every audited change has its outbox entry, written with it: the audit
// log and the outbox list the same events, on both stores.
func TestEveryAuditEntryHasItsOutboxEntry(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			ctx := context.Background()
			a := f.activate("KEY-1", "acme.com")
			f.activate("KEY-1", "acme.com")
			for _, action := range []string{ActionSuspend, ActionReinstate, ActionLock, ActionUnlock} {
				if _, err := f.svc.ChangeLicense(ctx, a.License.ID, action, "why"); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := f.svc.RotateKeys(ctx); err != nil {
				t.Fatal(err)
			}
			audit := f.audited()
			es, _, err := f.svc.Deliveries(ctx, store.OutboxQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var queued []string
			for _, e := range es {
				queued = append(queued, e.Event.Actor+" "+e.Event.Action)
				if e.Event.Action != store.AuditKeysRotated && (e.Event.LicenseID != a.License.ID || e.Event.Product != "p") {
					t.Errorf("entry %+v lacks the licence", e)
				}
			}
			want := "[installer installation.created installer installation.reactivated admin license.suspended admin license.reinstated admin license.locked admin license.unlocked admin keys.rotated]"
			if fmt.Sprint(audit) != want || fmt.Sprint(queued) != want {
				t.Fatalf("audit %v\noutbox %v\nwant %s", audit, queued, want)
			}
			if _, _, err := f.svc.Deliveries(ctx, store.OutboxQuery{Status: "bogus"}); err == nil {
				t.Error("a bogus status is accepted")
			}
			if err := f.svc.RetryDelivery(ctx, es[0].ID); err != ErrNotFound {
				t.Errorf("retrying a pending delivery: %v, want ErrNotFound", err)
			}
		})
	}
}

// Trim deletes audit entries past the retention and delivered outbox
// entries past theirs.
func TestTrim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.activate("KEY-1", "acme.com")
	f.svc.cfg.AuditRetention = time.Hour
	f.clock.Advance(2 * time.Hour)
	f.activate("KEY-2", "acme.org")
	if n := f.svc.Trim(ctx); n != 1 {
		t.Fatalf("trimmed %d, want the older audit entry", n)
	}
	if got := f.audited(); len(got) != 1 {
		t.Fatalf("audit after trim: %v", got)
	}
}

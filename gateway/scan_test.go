package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// scanCounter is a store that counts the reads that walk every licence
// (ListLicenses, the only such read the store offers).
type scanCounter struct {
	store.Store
	scans atomic.Int64
}

// The optional reads both stores offer, passed through.
func (c *scanCounter) LookupAfter(ctx context.Context, term, after string, limit int) ([]string, error) {
	return c.Store.(store.TermPager).LookupAfter(ctx, term, after, limit)
}
func (c *scanCounter) CountTerm(ctx context.Context, term string) (int64, error) {
	return c.Store.(store.TermPager).CountTerm(ctx, term)
}
func (c *scanCounter) LicenseAudit(ctx context.Context, id string, limit int) ([]store.AuditEvent, error) {
	return c.Store.(store.AuditByLicense).LicenseAudit(ctx, id, limit)
}
func (c *scanCounter) OutboxFailed(ctx context.Context) (int64, error) {
	return c.Store.(store.OutboxCounter).OutboxFailed(ctx)
}
func (c *scanCounter) StatusCounts(ctx context.Context) (map[string]int64, map[string]int64, int64, error) {
	return c.Store.(store.StatusCounter).StatusCounts(ctx)
}

func (c *scanCounter) ListLicenses(ctx context.Context, after string, limit int) ([]*store.LicenseState, error) {
	c.scans.Add(1)
	return c.Store.ListLicenses(ctx, after, limit)
}

// TestNoScanPerRequest (issue 26, acceptance 3): nothing that runs per
// request, per activation or per recheck reads all licences. Every path
// an installer, the gate, a buyer, the recheck worker or the author
// console takes runs here on both stores, and none lists the licences;
// the paths that do walk them (the admin API's stats and filtered list,
// the idle sweep) are checked to be the only ones, so a new walker shows
// up here.
func TestNoScanPerRequest(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			sc := &scanCounter{Store: f.store}
			f.svc.cfg.Store = sc
			ctx := context.Background()

			a := f.activate("KEY-1", "one.example.com")
			f.activate("KEY-2", "two.example.com")
			if _, err := f.svc.Gate(nil).AdmitVersion(ctx, a.AccessToken, "1.2.3", 0); err != nil {
				t.Fatal(err)
			}
			must := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			must("flush last seen", f.svc.FlushLastSeen(ctx))
			must("flush counts", f.svc.FlushDaily(ctx))
			toks, err := f.svc.Refresh(ctx, a.RefreshToken)
			must("refresh", err)
			_, err = f.svc.Status(ctx, toks.AccessToken)
			must("status", err)
			f.clock.Advance(testCooldown + time.Hour)
			toks, err = f.svc.Refresh(ctx, toks.RefreshToken)
			must("refresh a day later", err)
			moved, err := f.svc.Move(ctx, MoveRequest{Token: toks.AccessToken, Domain: "new.example.com"})
			must("move", err)
			_, _, err = f.svc.RefreshStatus(ctx, moved.AccessToken)
			must("status refresh", err)
			_, err = f.svc.OwnedLicences(ctx, "keys", []string{"KEY-1"}, nil)
			must("portal: owned licences", err)
			for _, kind := range SearchKinds {
				_, err = f.svc.Search(ctx, kind, "one.example.com")
				must("search", err)
			}
			_, err = f.svc.Overview(ctx)
			must("overview", err)
			_, err = f.svc.QueueSizes(ctx)
			must("queue sizes", err)
			for _, kind := range QueueKinds {
				_, _, err = f.svc.ReviewQueue(ctx, kind, "")
				must("review queue", err)
			}
			_, err = f.svc.Review(ctx, a.License.ID)
			must("licence page", err)
			_, err = f.svc.InstalledVersions(ctx, "p")
			must("versions", err)
			f.clock.Advance(8 * 24 * time.Hour) // every licence due for its recheck
			last, err := f.svc.Refresh(ctx, moved.RefreshToken)
			must("refresh a week later", err)
			_, err = f.svc.RecheckOnce(ctx)
			must("recheck", err)
			_, err = f.svc.RecheckLicenseBy(ctx, ConsoleActor("alice"), a.License.ID, "asked")
			must("recheck now", err)
			_, err = f.svc.ChangeLicenseBy(ctx, ConsoleActor("alice"), a.License.ID, ActionLock, "leak", "")
			must("lock", err)
			must("deactivate", f.svc.Deactivate(ctx, last.AccessToken, ""))
			if n := sc.scans.Load(); n != 0 {
				t.Fatalf("%d reads of every licence on a per-request, per-activation or per-recheck path", n)
			}

			// The walkers, each an author's or a sweep's, never a request's.
			_, err = f.svc.Stats(ctx)
			must("admin stats", err)
			if sc.scans.Load() == 0 {
				t.Error("the admin stats no longer walk the licences: update this test and docs/scale.md")
			}
		})
	}
}

package gateway

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestVersionsRecordedWithLastSeen: the version an installation reports
// at the gate reaches the store with its last seen, in the flush's one
// batch (never a write per request), and moves it in its product's
// counts; a version that is not valid is ignored; a deactivated
// installation stops counting.
func TestVersionsRecordedWithLastSeen(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			out := &outageStore{Store: f.store}
			f.svc.cfg.Store = out
			ctx := context.Background()
			g := f.svc.Gate(nil)
			a := f.activate("KEY-1", "one.example")
			b := f.activate("KEY-2", "two.example")
			admit := func(token, version string) {
				t.Helper()
				if _, err := g.AdmitVersion(ctx, token, version, 0); err != nil {
					t.Fatal(err)
				}
			}
			expect := func(what string, want map[string]int64) {
				t.Helper()
				got, err := f.store.Versions(ctx, "p")
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: versions %v, %v; want %v", what, got, err, want)
				}
			}
			flush := func() {
				t.Helper()
				tries := out.tries
				if err := f.svc.FlushLastSeen(ctx); err != nil {
					t.Fatal(err)
				}
				if out.tries != tries+1 {
					t.Fatalf("%d store calls for a flush, want 1", out.tries-tries)
				}
			}

			admit(a.AccessToken, "1.2.0")
			admit(a.AccessToken, "1.2.0")
			admit(b.AccessToken, "1.2.0")
			admit(b.AccessToken, "1.2.0 beta") // not a version: ignored
			admit(b.AccessToken, "")
			expect("before a flush", map[string]int64{})
			flush()
			expect("after the flush", map[string]int64{"1.2.0": 2})
			ins, err := f.store.LicenseState(ctx, a.License.ID)
			if err != nil || ins.Installation(a.InstallationID).Version != "1.2.0" {
				t.Fatalf("installation after the flush: %+v, %v", ins, err)
			}

			// An upgrade within the last-seen resolution is noted too.
			f.clock.Advance(time.Millisecond)
			admit(a.AccessToken, "1.3.0")
			flush()
			expect("after an upgrade", map[string]int64{"1.2.0": 1, "1.3.0": 1})
			tries := out.tries
			if err := f.svc.FlushLastSeen(ctx); err != nil || out.tries != tries {
				t.Fatalf("an idle flush reached the store (%v)", err)
			}

			if err := f.svc.Deactivate(ctx, b.AccessToken, ""); err != nil {
				t.Fatal(err)
			}
			expect("after a deactivation", map[string]int64{"1.3.0": 1})
			if got, err := f.svc.InstalledVersions(ctx, "p"); err != nil || !reflect.DeepEqual(got, map[string]int64{"1.3.0": 1}) {
				t.Fatalf("InstalledVersions = %v, %v", got, err)
			}
		})
	}
}

// TestSeenTrackerVersion: a changed version is pending even within the
// resolution, an unreported one keeps the last, and a batch the store
// took is not sent again.
func TestSeenTrackerVersion(t *testing.T) {
	tr := newSeenTracker()
	now := time.Unix(1000, 0)
	tr.touch("ins", "lic", "1.0", now)
	batch := tr.pending(now, time.Hour)
	if len(batch) != 1 || batch[0].Version != "1.0" {
		t.Fatalf("pending %+v", batch)
	}
	tr.written(batch)
	tr.touch("ins", "lic", "", now.Add(time.Millisecond))
	tr.touch("ins", "lic", "1.0", now.Add(2*time.Millisecond))
	if got := tr.pending(now, time.Hour); len(got) != 0 {
		t.Fatalf("pending %+v after uses within the resolution on the same version", got)
	}
	tr.touch("ins", "lic", "2.0", now.Add(3*time.Millisecond))
	batch = tr.pending(now, time.Hour)
	if len(batch) != 1 || batch[0].Version != "2.0" {
		t.Fatalf("pending %+v after an upgrade, want version 2.0", batch)
	}
	tr.touch("ins", "lic", "", now.Add(2*time.Second))
	tr.written(batch)
	if got := tr.pending(now, time.Hour); len(got) != 1 || got[0].Version != "2.0" {
		t.Fatalf("pending %+v, want the later use with the last version", got)
	}
}

// TestAdmitVersionAllocatesNothing: reporting the version the
// installation is known on costs the gate no allocation.
func TestAdmitVersionAllocatesNothing(t *testing.T) {
	f := newFixture(t)
	a := f.activate("KEY-1", "one.example")
	g := f.svc.Gate(nil)
	ctx := context.Background()
	if _, err := g.AdmitVersion(ctx, a.AccessToken, "1.2.0", time.Minute); err != nil {
		t.Fatal(err)
	}
	version := string([]byte("1.2.0")) // a header's own string, not the constant
	if n := testing.AllocsPerRun(200, func() {
		if _, err := g.AdmitVersion(ctx, a.AccessToken, version, time.Minute); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per admitted request with a version, want 0", n)
	}
}

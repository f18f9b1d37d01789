package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// quota 3/d on a fake clock: three admitted counting down, the fourth
// refused until the next UTC day, another installation unaffected.
func TestQuotaPerDay(t *testing.T) {
	f := newFixture(t) // clock at 2026-03-01 12:00 UTC
	a := f.activate("KEY-1", "acme.com")
	b := f.activate("KEY-2", "beta.com")
	g := f.svc.Gate(nil, WithQuota(Quota{Limit: 3, Period: 24 * time.Hour}))
	ctx := context.Background()
	for want := int64(2); want >= 0; want-- {
		grant, err := g.Admit(ctx, a.AccessToken, 0)
		if err != nil || grant.Quota.Remaining != want || grant.Quota.Reset != 12*time.Hour {
			t.Fatalf("admitted with %+v (%v), want %d left, 12h to reset", grant.Quota, err, want)
		}
	}
	grant, err := g.Admit(ctx, a.AccessToken, 0)
	e := wantCode(t, err, CodeQuotaExceeded)
	if e.RetryAfter != 12*time.Hour || grant.Quota.Remaining != 0 || grant.Quota.Limit != 3 {
		t.Fatalf("refusal retry after %s, quota %+v", e.RetryAfter, grant.Quota)
	}
	if grant, err := g.Admit(ctx, b.AccessToken, 0); err != nil || grant.Quota.Remaining != 2 {
		t.Fatalf("another installation: %+v, %v", grant.Quota, err)
	}
	f.clock.Advance(12*time.Hour - time.Second) // 23:59:59 UTC
	a = f.activate("KEY-1", "acme.com")         // a fresh token, the same installation
	_, err = g.Admit(ctx, a.AccessToken, 0)
	if e := wantCode(t, err, CodeQuotaExceeded); e.RetryAfter != time.Second {
		t.Fatalf("retry after %s at 23:59:59", e.RetryAfter)
	}
	f.clock.Advance(time.Second) // the next UTC day
	if grant, err := g.Admit(ctx, a.AccessToken, 0); err != nil || grant.Quota.Remaining != 2 {
		t.Fatalf("the next day: %+v, %v", grant.Quota, err)
	}
}

// flakyQuotaStore fails AddQuota while down.
type flakyQuotaStore struct {
	store.Store
	down bool
}

func (s *flakyQuotaStore) AddQuota(ctx context.Context, d []store.QuotaDelta) ([]int64, error) {
	if s.down {
		return nil, store.ErrUnavailable
	}
	return s.Store.AddQuota(ctx, d)
}

// Two instances on one store with quota 100/m: each syncs once a second;
// between syncs each admits on its own count, so the overshoot is what
// the other admitted since its last sync, and after a sync both refuse.
// A store outage refuses nothing.
func TestQuotaAcrossInstances(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			a := f.activate("KEY-1", "acme.com")
			other, err := New(f.svc.cfg) // a second instance: same store, own counters
			if err != nil {
				t.Fatal(err)
			}
			flaky := &flakyQuotaStore{Store: f.store}
			f.svc.cfg.Store = flaky
			f.clock.Advance(time.Minute - time.Duration(f.clock.Now().Second())*time.Second) // start of a minute
			q := Quota{Limit: 100, Period: time.Minute}
			gates := []*Gate{f.svc.Gate(nil, WithQuota(q)), other.Gate(nil, WithQuota(q))}
			svcs := []*Service{f.svc, other}
			ctx := context.Background()
			admitted := make([]int, 2)
			send := func(i, n int) {
				for ; n > 0; n-- {
					_, err := gates[i].Admit(ctx, a.AccessToken, time.Hour)
					switch {
					case err == nil:
						admitted[i]++
					case errors.As(err, new(*Error)) && err.(*Error).Code == CodeQuotaExceeded:
					default:
						t.Fatal(err)
					}
				}
			}
			sync := func() {
				for _, s := range svcs {
					if err := s.SyncQuota(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			// 300 requests, 25 per instance per sync interval.
			for round := 0; round < 6; round++ {
				send(0, 25)
				send(1, 25)
				sync()
				f.clock.Advance(time.Second)
			}
			total := admitted[0] + admitted[1]
			t.Logf("%s: admitted %d of 300 (%d + %d) with quota 100/m, 25 per instance per sync", backend, total, admitted[0], admitted[1])
			if total < 100 || total > 100+25 {
				t.Fatalf("admitted %d, want 100 to 125 (100 plus what the other instance admits in one sync interval)", total)
			}
			// The store down: counting goes on locally, nothing refused
			// that the local count allows.
			f.clock.Advance(time.Minute)
			flaky.down = true
			send(0, 10)
			if err := f.svc.SyncQuota(ctx); err == nil {
				t.Fatal("sync succeeded with the store down")
			}
			send(0, 10)
			if admitted[0]+admitted[1]-total != 20 {
				t.Fatalf("during the outage %d of 20 admitted", admitted[0]+admitted[1]-total)
			}
			// Back: the other instance, new to the installation in this
			// window, admits on its own count until its first sync has
			// taught it the 20 (one interval), then stops at 100.
			flaky.down = false
			sync()
			send(1, 25)
			sync()
			send(1, 100)
			if got := admitted[0] + admitted[1] - total - 20; got != 80 {
				t.Fatalf("after the outage the other instance admitted %d, want 80", got)
			}
		})
	}
}

// One instance is exact under concurrency, syncs running meanwhile.
func TestQuotaExactUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	a := f.activate("KEY-1", "acme.com")
	g := f.svc.Gate(nil, WithQuota(Quota{Limit: 1000, Period: time.Hour}))
	ctx := context.Background()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
				if err := f.svc.SyncQuota(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if _, err := g.Admit(ctx, a.AccessToken, time.Hour); err == nil {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	<-stopped // the syncs end before the fixture's store closes
	if n := admitted.Load(); n != 1000 {
		t.Fatalf("admitted %d of 4000 with quota 1000/h on one instance, want 1000", n)
	}
}

// Issue 20, N4: free installs (local and staging, holding no slot) share
// one budget per licence, so deactivating one *.test install and
// activating another does not start a fresh quota; the product's
// free_quota bounds them together at every gate, production untouched.
func TestFreeInstallsShareTheLicenceQuota(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.svc.cfg.Products["p"].FreeQuota = Quota{Limit: 5, Period: 24 * time.Hour}
	quota := f.svc.Gate(nil, WithQuota(Quota{Limit: 3, Period: 24 * time.Hour}))
	admit := func(g *Gate, token string) error {
		f.svc.cache.InvalidateAll()
		_, err := g.Admit(ctx, token, 0)
		return err
	}
	prod := f.activate("KEY-1", "buyer.com")
	local := f.activate("KEY-1", "site1.test")
	for i := range 3 {
		if err := admit(quota, local.AccessToken); err != nil {
			t.Fatalf("local request %d: %v", i, err)
		}
	}
	wantCode(t, admit(quota, local.AccessToken), CodeQuotaExceeded)
	if err := f.svc.Deactivate(ctx, local.AccessToken, ""); err != nil {
		t.Fatal(err)
	}
	other := f.activate("KEY-1", "site2.test")
	wantCode(t, admit(quota, other.AccessToken), CodeQuotaExceeded) // the licence's free budget, not a fresh one
	for i := range 3 {
		if err := admit(quota, prod.AccessToken); err != nil {
			t.Fatalf("production request %d: %v", i, err)
		}
	}
	// free_quota, at a gate without a quota of its own: 5 for all free
	// installs of the licence together (the 3 local requests admitted
	// above count; those the gate's own quota refused do not).
	open := f.svc.Gate(nil)
	staging := f.activate("KEY-1", "staging.buyer.com")
	n := 0
	for admit(open, staging.AccessToken) == nil {
		n++
		if n > 10 {
			t.Fatal("free_quota never refused")
		}
	}
	wantCode(t, admit(open, other.AccessToken), CodeQuotaExceeded)
	if err := admit(open, prod.AccessToken); err != nil {
		t.Fatalf("production at the open gate: %v", err)
	}
	if n != 5-3 {
		t.Fatalf("%d staging requests admitted under free_quota 5/d after 3 local ones, want 2", n)
	}
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"slices"
	"testing"

	"github.com/licensegate/licensegate/internal/redistest"
	redisstore "github.com/licensegate/licensegate/store/redis"

	"github.com/licensegate/licensegate/upstreams"
)

// TestSearch finds one licence by each thing an author may have at hand,
// on both stores, and nothing by what matches none of them.
func TestSearch(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			f := newFixtureOn(t, backend)
			ctx := context.Background()
			v := upstreams.ValidVerdict(upstreams.Record{Product: "p", Type: "regular", LicensedTo: "AliceBuilds", Email: "Alice@Example.com"})
			f.src.answer = &v
			a := f.activate("KEY-ALICE", "shop.alice.example")
			f.src.answer = nil
			other := f.activate("KEY-BOB", "bob.example")
			want := a.License.ID
			for _, c := range []struct{ q, by string }{
				{"KEY-ALICE", SearchByKey},
				{"  " + want + " ", SearchByLicense},
				{a.InstallationID, SearchByInstallation},
				{"SHOP.alice.example", SearchByDomain},
				{"https://shop.alice.example/", SearchByDomain},
				{"alice@example.com", SearchByEmail},
				{"alicebuilds", SearchByBuyer},
			} {
				hits, err := f.svc.Search(ctx, c.by, c.q)
				if err != nil {
					t.Fatalf("search %q: %v", c.q, err)
				}
				if len(hits) != 1 || hits[0].License.ID != want || hits[0].By != c.by {
					t.Errorf("search %q: %+v, want %s by %s", c.q, hits, want, c.by)
				}
			}
			// Either id, by SearchByID.
			for _, q := range []string{want, a.InstallationID} {
				if hits, err := f.svc.Search(ctx, SearchByID, q); err != nil || len(hits) != 1 || hits[0].License.ID != want {
					t.Errorf("search id %q: %+v, %v", q, hits, err)
				}
			}
			for _, c := range []struct{ by, q string }{
				{SearchByKey, ""}, {SearchByKey, "KEY-NOBODY"}, {SearchByDomain, "nobody.example"}, {SearchByEmail, "carol@example.com"},
				{SearchByID, "lic_nope"}, {SearchByID, "ins_nope"}, {SearchByBuyer, "alice"},
				{SearchByDomain, "KEY-ALICE"}, {SearchByBuyer, "shop.alice.example"}, {SearchByKey, "alicebuilds"},
			} {
				hits, err := f.svc.Search(ctx, c.by, c.q)
				if err != nil || len(hits) != 0 {
					t.Errorf("search %s %q: %+v, %v; want nothing", c.by, c.q, hits, err)
				}
			}
			if _, err := f.svc.Search(ctx, "everything", "x"); !errors.Is(err, ErrSearchKind) {
				t.Errorf("an unknown kind: %v", err)
			}
			hits, err := f.svc.Search(ctx, SearchByDomain, "bob.example")
			if err != nil || len(hits) != 1 || hits[0].License.ID != other.License.ID {
				t.Errorf("search bob.example: %+v, %v", hits, err)
			}
			if ids := hitIDs(hits); slices.Contains(ids, want) {
				t.Errorf("bob's search found alice's licence")
			}
		})
	}
}

func hitIDs(hits []SearchHit) []string {
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.License.ID)
	}
	return ids
}

// commandLog records every Redis command's arguments.
type commandLog struct {
	mu   sync.Mutex
	args []string
}

func (l *commandLog) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (l *commandLog) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		l.note(cmd)
		return next(ctx, cmd)
	}
}
func (l *commandLog) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, c := range cmds {
			l.note(c)
		}
		return next(ctx, cmds)
	}
}
func (l *commandLog) note(cmd goredis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.args = append(l.args, fmt.Sprint(cmd.Args()...))
}

// TestSearchByKeySendsNoKey: a search by key reaches Redis as keyed
// hashes only; the key is in no command (MONITOR, a proxy's log).
func TestSearchByKeySendsNoKey(t *testing.T) {
	srv := redistest.NewServer(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	log := &commandLog{}
	client.AddHook(log)
	rs := redisstore.New(client, redisstore.Options{})
	t.Cleanup(func() { _ = rs.Close() })
	f := newFixtureStore(t, "redis", rs)
	ctx := context.Background()
	a := f.activate("KEY-SECRET-CODE-42", "shop.example.com")
	log.mu.Lock()
	log.args = nil
	log.mu.Unlock()
	hits, err := f.svc.Search(ctx, SearchByKey, "KEY-SECRET-CODE-42")
	if err != nil || len(hits) != 1 || hits[0].License.ID != a.License.ID {
		t.Fatalf("search: %+v, %v", hits, err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.args) == 0 {
		t.Fatal("no command recorded")
	}
	for _, c := range log.args {
		if strings.Contains(strings.ToLower(c), "secret-code") {
			t.Errorf("a command carries the key: %s", c)
		}
	}
}

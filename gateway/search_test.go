package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"

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

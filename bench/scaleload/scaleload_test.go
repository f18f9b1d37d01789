package scaleload

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/redistest"
	rstore "github.com/licensegate/licensegate/store/redis"
)

// TestLoadIsWhatSearchFinds loads a few licences, twice (the second run
// resumes and writes nothing), and finds each of them by every kind of
// console search, as the gateway derives its ids and terms.
func TestLoadIsWhatSearchFinds(t *testing.T) {
	srv := redistest.NewServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	const prefix = "lgtest:"
	st := rstore.New(client, rstore.Options{KeyPrefix: prefix})
	t.Cleanup(func() { _ = st.Close() })
	f, err := NewFixture(st, DefaultSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx := context.Background()
	const n = 20
	p, err := Load(ctx, client, prefix, st, f, Options{N: n, Workers: 4, Chunk: 3})
	if err != nil || p.Done != n || p.Written != n {
		t.Fatalf("load: %+v, %v; want %d written", p, err, n)
	}
	p, err = Load(ctx, client, prefix, st, f, Options{N: n, Workers: 4, Chunk: 3})
	if err != nil || p.Done != n || p.Written != 0 {
		t.Fatalf("second load: %+v, %v; want nothing written", p, err)
	}
	if done, _, _, err := ReadProgress(ctx, client, prefix); err != nil || done != n {
		t.Fatalf("progress: %d, %v", done, err)
	}
	for _, i := range []int{0, 7, n - 1} {
		for _, c := range []struct{ q, by string }{
			{Key(i), gateway.SearchByKey},
			{f.LicenseID(i), gateway.SearchByLicense},
			{InstallationID(i), gateway.SearchByInstallation},
			{Domain(i), gateway.SearchByDomain},
			{Email(i), gateway.SearchByEmail},
			{Buyer(i), gateway.SearchByBuyer},
		} {
			hits, err := f.Service.Search(ctx, c.by, c.q)
			if err != nil || len(hits) != 1 || hits[0].By != c.by || hits[0].License.ID != f.LicenseID(i) {
				t.Errorf("search %q: %+v, %v; want %s by %s", c.q, hits, err, f.LicenseID(i), c.by)
			}
		}
	}
	for _, c := range []struct{ by, q string }{{gateway.SearchByKey, Key(n)}, {gateway.SearchByDomain, Domain(n)},
		{gateway.SearchByEmail, Email(n)}, {gateway.SearchByBuyer, Buyer(n)}} {
		if hits, err := f.Service.Search(ctx, c.by, c.q); err != nil || len(hits) != 0 {
			t.Errorf("search %s %q: %+v, %v; want nothing", c.by, c.q, hits, err)
		}
	}
	// The licence is the gateway's: its key opens, and the admin view
	// shows its one active installation.
	d, err := f.Service.LookupKey(ctx, Key(3))
	if err != nil || d.License.ID != f.LicenseID(3) || len(d.Installations) != 1 || d.Installations[0].Domain != Domain(3) {
		t.Fatalf("LookupKey: %+v, %v", d, err)
	}
}

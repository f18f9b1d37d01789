// Command searchbench measures the author console's search
// (gateway.Service.Search, SPEC section 13) against a Redis that
// loadlicenses filled: a gateway.Service on that Redis, with the load's
// master secret and an Envato source (never asked: a search reads only
// the store), looks up distinct random licences by purchase code, licence
// id, installation id, domain, buyer e-mail and Envato username, and
// queries that match nothing, each kind by one client and by several at
// once.
//
//	go run ./bench/cmd/searchbench -redis 127.0.0.1:6379
//
// Every case runs once in each round, in reversed order every other round
// (A B ... B A), after one warm-up pass; the table gives per-case medians
// over the rounds and the p99 and max of all a case's queries. Every
// answer is checked: a hit must be the licence asked for, found by the
// kind asked, and a miss must find nothing; any other answer is counted
// in the "wrong" column. bench/run.sh search runs it after a load.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/bench/scaleload"
	"github.com/licensegate/licensegate/gateway"
	rstore "github.com/licensegate/licensegate/store/redis"
)

// kind is one way of searching: the query for licence i, and what the hit
// must be found by ("" for a miss).
type kind struct {
	name string
	by   string
	// query is the kind Search is asked (a miss rotates) and the query.
	query func(f *scaleload.Fixture, i, n int) (by, q string)
}

var kinds = []kind{
	{"key (purchase code)", gateway.SearchByKey, func(_ *scaleload.Fixture, i, _ int) (string, string) { return gateway.SearchByKey, scaleload.Key(i) }},
	{"licence id", gateway.SearchByLicense, func(f *scaleload.Fixture, i, _ int) (string, string) { return gateway.SearchByLicense, f.LicenseID(i) }},
	{"installation id", gateway.SearchByInstallation, func(_ *scaleload.Fixture, i, _ int) (string, string) {
		return gateway.SearchByInstallation, scaleload.InstallationID(i)
	}},
	{"domain", gateway.SearchByDomain, func(_ *scaleload.Fixture, i, _ int) (string, string) {
		return gateway.SearchByDomain, scaleload.Domain(i)
	}},
	{"e-mail", gateway.SearchByEmail, func(_ *scaleload.Fixture, i, _ int) (string, string) {
		return gateway.SearchByEmail, scaleload.Email(i)
	}},
	{"buyer username", gateway.SearchByBuyer, func(_ *scaleload.Fixture, i, _ int) (string, string) {
		return gateway.SearchByBuyer, scaleload.Buyer(i)
	}},
	// A miss: the key, domain or e-mail of a licence beyond the load, in
	// turn.
	{"miss (key, domain or e-mail of no licence)", "", func(_ *scaleload.Fixture, i, n int) (string, string) {
		switch i % 3 {
		case 0:
			return gateway.SearchByKey, scaleload.Key(n + i)
		case 1:
			return gateway.SearchByDomain, scaleload.Domain(n + i)
		}
		return gateway.SearchByEmail, scaleload.Email(n + i)
	}},
}

type bcase struct {
	kind    kind
	clients int
}

func (c bcase) String() string { return fmt.Sprintf("%s, %d client(s)", c.kind.name, c.clients) }

// sample is one round of one case.
type sample struct {
	qps            float64
	p50, p99, maxd time.Duration
	lat            []time.Duration
	wrong          int
}

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address (host:port)")
	prefix := flag.String("prefix", rstore.DefaultKeyPrefix, "the store's key prefix")
	secretText := flag.String("secret", scaleload.DefaultSecret, "the master secret the licences were loaded under")
	n := flag.Int("n", 0, "licences loaded (0: as the load's progress key says)")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	queries := flag.Int("queries", 1000, "queries per case per round")
	clientsFlag := flag.String("clients", "1,16", "concurrent clients of each kind, comma-separated")
	seed := flag.Uint64("seed", 1, "picks the licences searched for")
	flag.Parse()

	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: 64, ContextTimeoutEnabled: true})
	defer client.Close()
	st := rstore.New(client, rstore.Options{KeyPrefix: *prefix})
	defer st.Close()
	f, err := scaleload.NewFixture(st, *secretText)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	done, loadTime, loadRate, err := scaleload.ReadProgress(ctx, client, *prefix)
	if err != nil {
		fail(fmt.Errorf("redis at %s: %w", *addr, err))
	}
	if *n == 0 {
		*n = done
	}
	if *n <= 0 {
		fail(fmt.Errorf("no licences loaded at %s (prefix %q): run loadlicenses first", *addr, *prefix))
	}
	var clients []int
	for _, s := range strings.Split(*clientsFlag, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c <= 0 {
			fail(fmt.Errorf("-clients: %q is not a positive number", s))
		}
		clients = append(clients, c)
	}
	var cases []bcase
	for _, c := range clients {
		for _, k := range kinds {
			cases = append(cases, bcase{k, c})
		}
	}

	pick := newPicker(*n, *seed)
	run := func(c bcase, q int) sample {
		lat := make([]time.Duration, q)
		var next atomic.Int64
		var wrong atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for range c.clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					j := int(next.Add(1)) - 1
					if j >= q {
						return
					}
					i := pick.next()
					by, query := c.kind.query(f, i, *n)
					s := time.Now()
					hits, err := f.Service.Search(ctx, by, query)
					lat[j] = time.Since(s)
					if !right(f, c.kind, i, hits, err) {
						wrong.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		wall := time.Since(t0)
		sorted := slices.Clone(lat)
		slices.Sort(sorted)
		return sample{qps: float64(q) / wall.Seconds(), p50: quantile(sorted, 0.50), p99: quantile(sorted, 0.99),
			maxd: sorted[len(sorted)-1], lat: lat, wrong: int(wrong.Load())}
	}

	fmt.Fprintf(os.Stderr, "searchbench: %d licences; %d cases x %d rounds of %d queries (one warm-up pass of %d first)\n",
		*n, len(cases), *rounds, *queries, min(*queries, 200))
	for _, c := range cases {
		run(c, min(*queries, 200))
	}
	results := make([][]sample, len(cases))
	for r := 1; r <= *rounds; r++ {
		order := make([]int, len(cases))
		for i := range order {
			order[i] = i
		}
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, ci := range order {
			c := cases[ci]
			s := run(c, *queries)
			results[ci] = append(results[ci], s)
			fmt.Fprintf(os.Stderr, "searchbench: round %d %-60s %8.0f q/s p50 %6.2f ms p99 %6.2f ms\n", r, c, s.qps, ms(s.p50), ms(s.p99))
		}
	}

	mem, dbsize := memory(ctx, client)
	fmt.Printf("console search (gateway.Service.Search) on Redis %s with %d licences of one installation each; %d interleaved rounds of %d queries per case, distinct random licences\n",
		*addr, *n, *rounds, *queries)
	fmt.Printf("redis: used_memory %.1f MiB, %.0f bytes per licence; %d keys\n", float64(mem)/(1<<20), float64(mem)/float64(*n), dbsize)
	if loadTime > 0 {
		fmt.Printf("load (loadlicenses): %s in all, last run %.0f licences/s\n", loadTime.Round(time.Second), loadRate)
	}
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, %s; %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Println()
	fmt.Println("| query | clients | queries/s median (min-max) | p50 ms median | p99 ms median (min-max) | p99 ms, all queries | max ms | wrong |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for ci, c := range cases {
		ss := results[ci]
		var qps, p50, p99 []float64
		var all []time.Duration
		var worst time.Duration
		wrong := 0
		for _, s := range ss {
			qps, p50, p99 = append(qps, s.qps), append(p50, ms(s.p50)), append(p99, ms(s.p99))
			all = append(all, s.lat...)
			worst = max(worst, s.maxd)
			wrong += s.wrong
		}
		slices.Sort(qps)
		slices.Sort(p99)
		slices.Sort(all)
		fmt.Printf("| %s | %d | %.0f (%.0f-%.0f) | %.2f | %.2f (%.2f-%.2f) | %.2f | %.2f | %d |\n", c.kind.name, c.clients,
			median(qps), qps[0], qps[len(qps)-1], median(p50), median(p99), p99[0], p99[len(p99)-1], ms(quantile(all, 0.99)), ms(worst), wrong)
	}
}

// right reports whether a search's answer is the one licence i, found by
// the kind's way (a miss: nothing).
func right(f *scaleload.Fixture, k kind, i int, hits []gateway.SearchHit, err error) bool {
	if err != nil {
		return false
	}
	if k.by == "" {
		return len(hits) == 0
	}
	return len(hits) == 1 && hits[0].By == k.by && hits[0].License.ID == f.LicenseID(i)
}

// picker hands out licence indexes in a random order without repeats
// (until all n were given): i -> (a*i + b) mod n with a prime to n.
type picker struct {
	n, a, b uint64
	k       atomic.Uint64
}

func newPicker(n int, seed uint64) *picker {
	r := rand.New(rand.NewPCG(seed, 0x5ca1e))
	p := &picker{n: uint64(n), b: r.Uint64N(uint64(n))}
	for {
		p.a = r.Uint64N(uint64(n)) | 1
		if gcd(p.a, p.n) == 1 {
			return p
		}
	}
}

func (p *picker) next() int {
	k := p.k.Add(1) - 1
	return int((p.a*(k%p.n) + p.b) % p.n) // a, k < n <= 2^32: no overflow for n up to 4e9
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func median(a []float64) float64 {
	s := slices.Clone(a)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// memory is INFO memory's used_memory and DBSIZE.
func memory(ctx context.Context, client *redis.Client) (used, keys int64) {
	keys, _ = client.DBSize(ctx).Result()
	info, _ := client.Info(ctx, "memory").Result()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			used, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return used, keys
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "searchbench:", err)
	os.Exit(1)
}

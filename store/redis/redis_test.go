package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/store/storetest"
)

// backend is one running Redis (a server or a Cluster) that many stores
// share, each under its own key prefix so every subtest starts empty.
type backend struct {
	addrs    []string
	prefixes atomic.Int64

	mu      sync.Mutex
	clients map[*redisstore.Store]goredis.UniversalClient
	prefix  map[*redisstore.Store]string
}

func newBackend(addrs ...string) *backend {
	return &backend{addrs: addrs, clients: map[*redisstore.Store]goredis.UniversalClient{}, prefix: map[*redisstore.Store]string{}}
}

// client returns a new client the test closes when it ends. With several
// addresses it is a Cluster client.
func (b *backend) client(t testing.TB) goredis.UniversalClient {
	t.Helper()
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 b.addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// store opens a Store with its own client under prefix ("": a new one).
func (b *backend) store(t testing.TB, prefix string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	if prefix == "" {
		prefix = fmt.Sprintf("lgt%d:", b.prefixes.Add(1))
	}
	c := b.client(t)
	opts.KeyPrefix = prefix
	s := redisstore.New(c, opts)
	t.Cleanup(func() { s.Close() })
	b.mu.Lock()
	b.clients[s], b.prefix[s] = c, prefix
	b.mu.Unlock()
	return s
}

// peer opens another Store, over another client, on the same data as s:
// a second gateway instance.
func (b *backend) peer(t testing.TB, s *redisstore.Store) *redisstore.Store {
	return b.store(t, b.prefixOf(s), redisstore.Options{})
}

func (b *backend) prefixOf(s *redisstore.Store) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.prefix[s]
}

func (b *backend) conformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return b.store(t, "", redisstore.Options{}) },
		storetest.WithPeer(func(t *testing.T, s store.Store) store.Store { return b.peer(t, s.(*redisstore.Store)) }),
		storetest.WithBreak(func(t *testing.T, s store.Store) {
			b.mu.Lock()
			c := b.clients[s.(*redisstore.Store)]
			b.mu.Unlock()
			c.Close()
		}),
		storetest.WithStall(func(t *testing.T, s store.Store) storetest.Stall { return b.stall(t, s.(*redisstore.Store)) }),
		storetest.WithRecordCount(func(t *testing.T, s store.Store, family string) int {
			return len(b.keys(t, b.prefixOf(s.(*redisstore.Store))+"*"+family+"*"))
		}),
		storetest.WithCorruptOutbox(func(t *testing.T, s store.Store, id string) {
			i := strings.LastIndexByte(id, ':')
			key := b.prefixOf(s.(*redisstore.Store)) + "{" + id[:i] + "}:ob"
			if err := b.client(t).HSet(context.Background(), key, id[i+1:], "{not json").Err(); err != nil {
				t.Fatal(err)
			}
		}),
	)
}

// keys lists the keys matching pattern, on every master of a Cluster.
func (b *backend) keys(t *testing.T, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	c := b.client(t)
	var err error
	if cc, ok := c.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return scan(ctx, m) })
	} else {
		err = scan(ctx, c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// stallTimeout is the Options.Timeout of a stalled store: how long a call
// waits on a server that stopped answering.
const stallTimeout = 300 * time.Millisecond

// stall opens a store on s's data whose connections can be held: a held
// connection's reads wait for their deadline, as if the server (or the
// network) had stopped answering after receiving the command.
func (b *backend) stall(t *testing.T, s *redisstore.Store) storetest.Stall {
	h := &holder{}
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 b.addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &heldConn{Conn: conn, h: h}, nil
		},
	})
	t.Cleanup(func() { c.Close() })
	st := redisstore.New(c, redisstore.Options{KeyPrefix: b.prefixOf(s), Timeout: stallTimeout})
	t.Cleanup(func() { st.Close() })
	if err := st.Ping(context.Background()); err != nil { // connect (and, on Cluster, learn the slots) first
		t.Fatal(err)
	}
	return storetest.Stall{Store: st, Hold: func() (<-chan struct{}, func()) { return h.hold(t) }}
}

// holder holds the reads of every connection it is given while held.
type holder struct {
	mu      sync.Mutex
	release chan struct{} // nil while not held
	waiting chan struct{} // closed by the first read held
	once    *sync.Once
}

func (h *holder) hold(t *testing.T) (waiting <-chan struct{}, release func()) {
	rel, w := make(chan struct{}), make(chan struct{})
	h.mu.Lock()
	h.release, h.waiting, h.once = rel, w, new(sync.Once)
	h.mu.Unlock()
	var done sync.Once
	release = func() {
		done.Do(func() {
			h.mu.Lock()
			h.release = nil
			h.mu.Unlock()
			close(rel)
		})
	}
	t.Cleanup(release)
	return w, release
}

// heldConn is a connection whose reads wait, while its holder holds, until
// their deadline passes or the holder releases.
type heldConn struct {
	net.Conn
	h *holder

	mu       sync.Mutex
	deadline time.Time // the read deadline
}

func (c *heldConn) SetDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *heldConn) SetReadDeadline(t time.Time) error {
	c.setReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *heldConn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
}

func (c *heldConn) Read(p []byte) (int, error) {
	c.h.mu.Lock()
	rel, waiting, once := c.h.release, c.h.waiting, c.h.once
	c.h.mu.Unlock()
	if rel != nil {
		once.Do(func() { close(waiting) })
		c.mu.Lock()
		d := c.deadline
		c.mu.Unlock()
		var expired <-chan time.Time
		if !d.IsZero() {
			t := time.NewTimer(time.Until(d))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-rel:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
	return c.Conn.Read(p)
}

func TestStandalone(t *testing.T) {
	b := newBackend(redistest.StartServer(t))
	t.Run("Conformance", b.conformance)
	b.redisTests(t)
}

func TestCluster(t *testing.T) {
	start := time.Now()
	b := newBackend(redistest.StartCluster(t, 3)...)
	t.Logf("3-node cluster up in %s", time.Since(start).Round(time.Millisecond))
	if _, ok := b.client(t).(*goredis.ClusterClient); !ok {
		t.Fatal("NewUniversalClient with the cluster's addresses is not a Cluster client")
	}
	t.Run("Conformance", b.conformance)
	b.redisTests(t)
	t.Run("OutboxIndexRederived", func(t *testing.T) {
		// On Cluster the outbox index is written after EXEC; if that write
		// is lost, the queue itself still finds its way back.
		s := b.store(t, "", redisstore.Options{})
		ctx := context.Background()
		_, err := s.UpdateLicense(ctx, "lic_lost", func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License = &store.License{ID: "lic_lost", Status: store.LicenseActive}
			st.Events = []store.AuditEvent{{Action: store.AuditLicenseLocked, LicenseID: "lic_lost", At: time.Now()}}
			return st, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.client(t).Del(ctx, b.prefix[s]+"{outbox}").Err(); err != nil {
			t.Fatal(err)
		}
		es, err := s.ClaimOutbox(ctx, time.Now(), time.Minute, 10)
		if err != nil || len(es) != 1 || es[0].Event.LicenseID != "lic_lost" {
			t.Fatalf("claimed %+v, %v; want the entry whose index write was lost", es, err)
		}
	})
	t.Run("KeySlotMatchesServer", func(t *testing.T) {
		c := b.client(t)
		for _, key := range []string{"", "a", "lg:{lic_1}:state", "lg:ins:ins_1", "lg:rt:{AbCd-_12}:x", "x{}y", "{a}{b}", "a{b", "a}b{c}", "lg:{due}:v"} {
			want, err := c.ClusterKeySlot(context.Background(), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := redisstore.KeySlot(key); int64(got) != want {
				t.Errorf("KeySlot(%q) = %d, server says %d", key, got, want)
			}
		}
	})
}

// redisTests are the Redis-only tests, run on a standalone server and on a
// Cluster.
func (b *backend) redisTests(t *testing.T) {
	t.Run("ActivationsAcrossInstances", b.testActivationsAcrossInstances)
	t.Run("AppendsAcrossInstances", b.testAppendsAcrossInstances)
	t.Run("ChangeFeedAcrossInstances", b.testChangeFeedAcrossInstances)
	t.Run("KeyLayout", b.testKeyLayout)
	t.Run("LostRacesEndInConflict", b.testLostRacesEndInConflict)
	t.Run("RivalWriteRerunsFn", b.testRivalWriteRerunsFn)
	t.Run("LateDueIndexWriteIgnored", b.testLateDueIndexWriteIgnored)
	t.Run("Close", b.testClose)
	t.Run("ListSkipsIndexedButGone", b.testListSkipsIndexedButGone)
	t.Run("CounterKeys", b.testCounterKeys)
	t.Run("VersionAdjustmentsCommute", b.testVersionAdjustmentsCommute)
	t.Run("QueueRepairedByNextWrite", b.testQueueRepairedByNextWrite)
	t.Run("TimelineKey", b.testTimelineKey)
	t.Run("StatusCountsAdoptOlderLicences", b.testStatusCountsAdoptOlderLicences)
	t.Run("InstallIndexMovesToBuckets", b.testInstallIndexMovesToBuckets)
	t.Run("OutboxQueuedBackfill", b.testOutboxQueuedBackfill)
}

// testInstallIndexMovesToBuckets: an installation indexed by a key of its
// own (the layout before the buckets) is found, and its licence's next
// write moves it into its bucket and deletes the key; one the write
// forgets is gone from both.
func (b *backend) testInstallIndexMovesToBuckets(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	p, raw := b.prefixOf(s), b.client(t)
	old := `{"license":{"id":"lic_old","status":"active","version":2},"installations":[` +
		`{"id":"ins_a","license_id":"lic_old","status":"active"},{"id":"ins_b","license_id":"lic_old","status":"active"}]}`
	if err := raw.Set(ctx, p+"{lic_old}:state", old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ins_a", "ins_b"} {
		if err := raw.Set(ctx, p+"ins:"+id, "lic_old", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"ins_a", "ins_b"} {
		if lic, err := s.InstallationLicense(ctx, id); err != nil || lic != "lic_old" {
			t.Fatalf("InstallationLicense(%s) of the layout before = %q, %v", id, lic, err)
		}
	}
	if _, err := s.UpdateLicense(ctx, "lic_old", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.Installations = st.Installations[:1] // ins_b forgotten
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ins_a", "ins_b"} { // one at a time: each its own slot on Cluster
		if n, err := raw.Exists(ctx, p+"ins:"+id).Result(); err != nil || n != 0 {
			t.Errorf("%s's key of the layout before left (%d), %v", id, n, err)
		}
	}
	if v, err := raw.HGet(ctx, redisstore.InstallBucketKey(s, "ins_a"), "ins_a").Result(); err != nil || v != "lic_old" {
		t.Errorf("ins_a's bucket holds %q, %v", v, err)
	}
	if lic, err := s.InstallationLicense(ctx, "ins_a"); err != nil || lic != "lic_old" {
		t.Errorf("InstallationLicense(ins_a) = %q, %v", lic, err)
	}
	if lic, err := s.InstallationLicense(ctx, "ins_b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("InstallationLicense(ins_b), forgotten = %q, %v; want ErrNotFound", lic, err)
	}
}

// testOutboxQueuedBackfill: a keyspace written before {outbox}:queued
// existed (its pending entries only in their queues and the log) lists
// them as pending all the same: the first pending listing of a Store
// fills :queued from the queues, once per keyspace, and a cursor issued
// when pending entries were read from the log still pages on.
func (b *backend) testOutboxQueuedBackfill(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	p := b.prefixOf(s)
	raw := b.client(t)
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	var lics []string
	for i := range 6 {
		lic := fmt.Sprintf("lic_old%d", i)
		lics = append(lics, lic)
		_, err := s.UpdateLicense(ctx, lic, func(st *store.LicenseState) (*store.LicenseState, error) {
			st.License = &store.License{ID: lic, Status: store.LicenseActive}
			st.Events = []store.AuditEvent{
				{Action: store.AuditLicenseLocked, LicenseID: lic, At: at.Add(time.Duration(i) * time.Second)},
				{Action: store.AuditLicenseUnlocked, LicenseID: lic, At: at.Add(time.Duration(i)*time.Second + time.Millisecond)},
			}
			return st, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Settle the heads of the first licences delivered, failed, pending.
	es, err := s.ClaimOutbox(ctx, at, time.Minute, 10)
	if err != nil || len(es) != 6 {
		t.Fatalf("ClaimOutbox: %d, %v", len(es), err)
	}
	settled := map[string]string{lics[0]: store.OutboxDelivered, lics[1]: store.OutboxFailed, lics[2]: store.OutboxPending}
	for _, e := range es {
		st, ok := settled[e.Event.LicenseID]
		if !ok {
			continue
		}
		e.Status, e.DoneAt = st, at
		if err := s.SettleOutbox(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	before, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 100})
	if err != nil || len(before) != 10 {
		t.Fatalf("pending entries: %d, %v; want 10", len(before), err)
	}
	// A page of all entries ending on a pending one: its cursor is what
	// an earlier version gave for a page of pending ones.
	all, cursor, err := s.OutboxEntries(ctx, store.OutboxQuery{Limit: 4})
	if err != nil || len(all) != 4 || all[3].Status != store.OutboxPending || cursor == "" {
		t.Fatalf("first page of all entries: %+v, %q, %v", all, cursor, err)
	}

	// As an earlier version left it: no :queued, no mark.
	if err := raw.Del(ctx, p+"{outbox}:queued", p+"{outbox}:queued:built").Err(); err != nil {
		t.Fatal(err)
	}
	s2 := b.peer(t, s)
	got, _, err := s2.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(before) {
		t.Fatalf("after the backfill %d pending entries, want %d", len(got), len(before))
	}
	for i := range got {
		if got[i].ID != before[i].ID {
			t.Errorf("pending entry %d = %s, want %s (same order)", i, got[i].ID, before[i].ID)
		}
	}
	if n, err := raw.Exists(ctx, p+"{outbox}:queued:built").Result(); err != nil || n != 1 {
		t.Errorf(":queued:built after the backfill: %d, %v", n, err)
	}
	if n, err := raw.ZCard(ctx, p+"{outbox}:queued").Result(); err != nil || n != int64(len(before)) {
		t.Errorf(":queued holds %d, %v; want %d", n, err, len(before))
	}
	// The old cursor pages on among the pending entries after it.
	page, _, err := s2.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, After: cursor, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range before {
		if e.CreatedAt.After(all[3].CreatedAt) || e.CreatedAt.Equal(all[3].CreatedAt) && e.ID > all[3].ID {
			want = append(want, e.ID)
		}
	}
	var ids []string
	for _, e := range page {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, want) || len(want) == 0 {
		t.Errorf("pending after an old cursor: %v, want %v", ids, want)
	}
	if _, _, err := s2.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, After: "12", Limit: 1}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("an offset cursor (an early version's): %v, want ErrBadCursor", err)
	}
	// Done once: an entry added to the queues behind :queued's back (an
	// earlier version's append after the backfill) is not looked for again.
	if err := raw.ZRem(ctx, p+"{outbox}:queued", before[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
	s3 := b.peer(t, s)
	if got, _, err := s3.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 100}); err != nil || len(got) != len(before)-1 {
		t.Errorf("a second Store's listing: %d, %v; want %d (no second backfill)", len(got), err, len(before)-1)
	}
}

// testStatusCountsAdoptOlderLicences: a licence stored before the status
// counts existed (its state without "counted") is in none of them, and
// its next write adds it once, taking nothing off; the writes after move
// it as any other.
func (b *backend) testStatusCountsAdoptOlderLicences(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	write := func(id string, fn func(*store.LicenseState)) {
		t.Helper()
		if _, err := s.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
			if st.License == nil {
				st.License = &store.License{ID: id, Status: store.LicenseActive}
			}
			fn(st)
			return st, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	write("lic_new", func(*store.LicenseState) {})
	old := `{"license":{"id":"lic_old","status":"flagged","locked":true,"version":3},"installations":[{"id":"ins_1","license_id":"lic_old","status":"active"}]}`
	if err := b.client(t).Set(ctx, b.prefixOf(s)+"{lic_old}:state", old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, active, flagged, installations, locked int64) {
		t.Helper()
		lic, ins, l, err := s.StatusCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lic[store.LicenseActive] != active || lic[store.LicenseFlagged] != flagged || ins[store.InstallationActive] != installations || l != locked {
			t.Errorf("%s: StatusCounts = %v, %v, %d; want active %d, flagged %d, installations %d, locked %d",
				what, lic, ins, l, active, flagged, installations, locked)
		}
	}
	expect("before lic_old's next write", 1, 0, 0, 0)
	for range 2 {
		write("lic_old", func(st *store.LicenseState) { st.License.VerifiedAt = time.Now() })
		expect("after lic_old's next writes", 1, 1, 1, 1)
	}
	write("lic_old", func(st *store.LicenseState) { st.License.Status, st.License.Locked = store.LicenseActive, false })
	expect("after lic_old was reinstated and unlocked", 2, 0, 1, 0)
	if n, err := b.client(t).HLen(ctx, b.prefixOf(s)+"status").Result(); err != nil || n == 0 {
		t.Errorf("HLEN %sstatus = %d, %v; want the counts there", b.prefixOf(s), n, err)
	}
}

// testTimelineKey: a licence's timeline is one list under its hash tag
// (so its MULTI/EXEC writes it on Cluster too), stored compactly: a
// listpack of short records that do not repeat the licence id.
func (b *backend) testTimelineKey(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	raw := b.client(t)
	const id = "lic_3f9a1c2b7d4e5f60a1b2"
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	if _, err := s.UpdateLicense(ctx, id, func(*store.LicenseState) (*store.LicenseState, error) {
		return &store.LicenseState{
			License: &store.License{ID: id, Status: store.LicenseActive},
			Events: []store.AuditEvent{
				{At: at, Actor: "installer", Action: store.AuditInstallationCreated, LicenseID: id, InstallationID: "ins_7c1d2e3f4a5b6c7d8e9f",
					Detail: "shop.acme-widgets.com", ClientIP: "203.0.113.45", Source: "envato", Product: "converter-pro"},
				{At: at.Add(time.Hour), Actor: "gateway", Action: store.AuditInstallationReactivated, LicenseID: id, InstallationID: "ins_7c1d2e3f4a5b6c7d8e9f",
					ClientIP: "203.0.113.45", PreviousClientIP: "203.0.113.45", Source: "envato", Product: "converter-pro"},
			},
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	key, state := b.prefixOf(s)+"{"+id+"}:audit", b.prefixOf(s)+"{"+id+"}:state"
	if redisstore.KeySlot(key) != redisstore.KeySlot(state) {
		t.Errorf("%s is not in its licence's slot", key)
	}
	enc, err := raw.ObjectEncoding(ctx, key).Result()
	if err != nil || enc != "listpack" && enc != "quicklist" { // a listpack, or one in a quicklist (before Redis 7.2)
		t.Errorf("OBJECT ENCODING %s = %q, %v; want listpack", key, enc, err)
	}
	recs, err := raw.LRange(ctx, key, 0, -1).Result()
	if err != nil || len(recs) != 2 {
		t.Fatalf("LRANGE %s = %v, %v", key, recs, err)
	}
	for _, r := range recs {
		if strings.Contains(r, id) || strings.Contains(r, "installation.") {
			t.Errorf("a record repeats the licence id or spells out its action: %s", r)
		}
	}
	mem, _ := raw.MemoryUsage(ctx, key).Result()
	t.Logf("a timeline of 2 events: %d bytes as a %s (records of %d and %d bytes)", mem, enc, len(recs[0]), len(recs[1]))
	if mem > 640 {
		t.Errorf("a timeline of 2 events takes %d bytes, want at most 640", mem)
	}
}

// testQueueRepairedByNextWrite: a licence stored before the review
// queues existed (its entry missing, as when its queue term was never
// written) is queued by its next write, whatever that write changes.
func (b *backend) testQueueRepairedByNextWrite(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	write := func(fn func(*store.License)) {
		t.Helper()
		if _, err := s.UpdateLicense(ctx, "lic_q", func(st *store.LicenseState) (*store.LicenseState, error) {
			if st.License == nil {
				st.License = &store.License{ID: "lic_q", Status: store.LicenseFlagged}
			}
			fn(st.License)
			return st, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(func(*store.License) {})
	key := b.prefixOf(s) + "term:" + store.QueueTerm(store.QueueFlagged)
	if err := b.client(t).ZRem(ctx, key, "lic_q").Err(); err != nil {
		t.Fatal(err)
	}
	write(func(l *store.License) { l.VerifiedAt = time.Now() })
	if n, err := s.CountTerm(ctx, store.QueueTerm(store.QueueFlagged)); err != nil || n != 1 {
		t.Errorf("CountTerm after the next write = %d, %v; want 1", n, err)
	}
}

// testVersionAdjustmentsCommute: on Cluster two writes' version
// adjustments are applied after their transactions and may arrive out
// of order; the counts end the same either way, and a version back at
// zero leaves no field.
func (b *backend) testVersionAdjustmentsCommute(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	// Three writes of one installation: w0 counts it on 1.0, w1 moves it
	// to 1.1, w2 to 1.2; their adjustments arrive w2's first, w0's last.
	for _, adj := range []struct {
		v string
		n int64
	}{{"1.1", -1}, {"1.2", 1}, {"1.0", -1}, {"1.1", 1}, {"1.0", 1}} {
		if err := redisstore.CountVersion(ctx, s, "p", adj.v, adj.n); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Versions(ctx, "p"); err != nil || len(got) != 1 || got["1.2"] != 1 {
		t.Errorf("Versions = %v, %v; want 1.2: 1", got, err)
	}
	if n, err := b.client(t).HLen(ctx, b.prefixOf(s)+"versions:p").Result(); err != nil || n != 1 {
		t.Errorf("HLEN = %d, %v; want 1", n, err)
	}
}

// testCounterKeys: a day's counters are one hash, named by the date,
// expiring DailyRetention after its last write; a product's version
// counts are one hash that does not expire.
func (b *backend) testCounterKeys(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	p := b.prefixOf(s)
	raw := b.client(t)
	day := time.Date(2026, 3, 14, 23, 59, 0, 0, time.UTC)
	if err := s.AddDaily(ctx, []store.DailyDelta{{Day: day, Series: "activations", N: 2}, {Day: day, Series: "gate:admitted", N: 5}}); err != nil {
		t.Fatal(err)
	}
	key := p + "daily:2026-03-14"
	if got, err := raw.HGetAll(ctx, key).Result(); err != nil || got["activations"] != "2" || got["gate:admitted"] != "5" || len(got) != 2 {
		t.Errorf("HGETALL %s = %v, %v", key, got, err)
	}
	if ttl, err := raw.TTL(ctx, key).Result(); err != nil || ttl < store.DailyRetention-time.Minute || ttl > store.DailyRetention {
		t.Errorf("TTL %s = %s, %v; want about %s", key, ttl, err, store.DailyRetention)
	}
	if _, err := s.UpdateLicense(ctx, "lic_v", func(*store.LicenseState) (*store.LicenseState, error) {
		return &store.LicenseState{
			License: &store.License{ID: "lic_v", Status: store.LicenseActive},
			Installations: []store.Installation{{ID: "ins_v", LicenseID: "lic_v", Product: "p", Status: store.InstallationActive, Version: "1.0"},
				{ID: "ins_w", LicenseID: "lic_v", Product: "p", Status: store.InstallationDeactivated, Version: "2.0"}},
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	key = p + "versions:p"
	if got, err := raw.HGetAll(ctx, key).Result(); err != nil || len(got) != 1 || got["1.0"] != "1" {
		t.Errorf("HGETALL %s = %v, %v; want 1.0: 1", key, got, err)
	}
	if ttl, _ := raw.PTTL(ctx, key).Result(); ttl >= 0 {
		t.Errorf("version counts expire (PTTL %s)", ttl)
	}
}

// testListSkipsIndexedButGone: ids in the listing index whose state is gone
// do not shorten a page (a short page means the end to the admin API).
func (b *backend) testListSkipsIndexedButGone(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	for _, id := range []string{"lic_a", "lic_b", "lic_c", "lic_d", "lic_e"} {
		if _, err := s.UpdateLicense(ctx, id, func(*store.LicenseState) (*store.LicenseState, error) {
			return &store.LicenseState{License: &store.License{ID: id, Status: store.LicenseActive}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := b.client(t)
	for _, id := range []string{"lic_b", "lic_c"} {
		if err := c.Del(ctx, b.prefixOf(s)+"{"+id+"}:state").Err(); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.ListLicenses(ctx, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range page {
		got = append(got, st.License.ID)
	}
	if !slices.Equal(got, []string{"lic_a", "lic_d", "lic_e"}) {
		t.Fatalf("page = %v, want [lic_a lic_d lic_e]", got)
	}
}

var errLimit = errors.New("activation limit reached")

// activate adds installation id unless limit installations are active.
func activate(id string) func(*store.LicenseState) (*store.LicenseState, error) {
	return func(st *store.LicenseState) (*store.LicenseState, error) {
		active := 0
		for _, in := range st.Installations {
			if in.Active() {
				active++
			}
		}
		if active >= st.License.ActivationsLimit {
			return nil, errLimit
		}
		st.Installations = append(st.Installations, store.Installation{ID: id, LicenseID: st.License.ID, Status: store.InstallationActive})
		return st, nil
	}
}

// testActivationsAcrossInstances: two instances, each with its own client,
// race 200 activations of one licence with a limit of 3.
func (b *backend) testActivationsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a := b.store(t, "", redisstore.Options{})
	other := b.peer(t, a)
	instances := []*redisstore.Store{a, other}
	if _, err := a.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
		return &store.LicenseState{License: &store.License{ID: "lic_1", Status: store.LicenseActive, ActivationsLimit: 3}}, nil
	}); err != nil {
		t.Fatal(err)
	}

	const n = 200
	var wg sync.WaitGroup
	var won, refused, calls atomic.Int64
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := activate(fmt.Sprintf("ins_%03d", i))
			_, err := instances[i%2].UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				calls.Add(1)
				return fn(st)
			})
			switch {
			case err == nil:
				won.Add(1)
			case err == errLimit:
				refused.Add(1)
			default:
				t.Errorf("activation %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d activations from 2 instances in %s; fn ran %d times (%d reruns after lost races)",
		n, time.Since(start).Round(time.Millisecond), calls.Load(), calls.Load()-n)
	if won.Load() != 3 || refused.Load() != n-3 {
		t.Fatalf("%d won and %d refused, want 3 and %d", won.Load(), refused.Load(), n-3)
	}
	for _, s := range instances {
		st, err := s.LicenseState(ctx, "lic_1")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Installations) != 3 || st.License.Version != 4 {
			t.Fatalf("stored %d installations at version %d, want 3 at 4", len(st.Installations), st.License.Version)
		}
	}
}

// testAppendsAcrossInstances: every call writes, so the instances' WATCH
// transactions really collide; none may be lost or fail.
func (b *backend) testAppendsAcrossInstances(t *testing.T) {
	ctx := context.Background()
	a := b.store(t, "", redisstore.Options{})
	instances := []*redisstore.Store{a, b.peer(t, a), b.peer(t, a)}
	// Every caller waits its turn within the default 2s timeout: 60 keeps
	// the queue short enough under -race on a small machine (150 writes
	// take ~0.4s without -race).
	const n = 60
	var wg sync.WaitGroup
	var calls atomic.Int64
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%len(instances)].UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				calls.Add(1)
				if st.License == nil {
					st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
				}
				st.Installations = append(st.Installations, store.Installation{ID: fmt.Sprintf("ins_%03d", i), LicenseID: "lic_1"})
				return st, nil
			})
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d appends from %d instances in %s; fn ran %d times (%d reruns after lost races)",
		n, len(instances), time.Since(start).Round(time.Millisecond), calls.Load(), calls.Load()-n)
	st, err := a.LicenseState(ctx, "lic_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Installations) != n || st.License.Version != n {
		t.Fatalf("%d installations at version %d, want %d at %d", len(st.Installations), st.License.Version, n, n)
	}
}

// testChangeFeedAcrossInstances: a change made on instance A reaches a
// subscriber on instance B within 1 s (SPEC section 6).
func (b *backend) testChangeFeedAcrossInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := b.store(t, "", redisstore.Options{})
	other := b.peer(t, a)
	changes, err := other.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	var lat []time.Duration
	for i := range rounds {
		id := fmt.Sprintf("lic_%d", i)
		start := time.Now()
		if _, err := a.UpdateLicense(ctx, id, func(*store.LicenseState) (*store.LicenseState, error) {
			return &store.LicenseState{License: &store.License{ID: id, Status: store.LicenseSuspended}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-changes:
			if c.LicenseID != id {
				t.Fatalf("notice for %q, want %q", c.LicenseID, id)
			}
			lat = append(lat, time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("no notice on instance B within 1s of a write on instance A (round %d)", i)
		}
	}
	slices.Sort(lat)
	t.Logf("write on A -> notice on B, %d rounds: median %s, max %s", rounds, lat[rounds/2], lat[rounds-1])
}

// testKeyLayout checks the documented layout on the server itself.
func (b *backend) testKeyLayout(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	p := b.prefixOf(s)
	raw := b.client(t)

	next := time.Date(2030, 1, 2, 3, 4, 5, 500_000, time.UTC) // sub-millisecond: rounded up
	if _, err := s.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
		return &store.LicenseState{
			License:       &store.License{ID: "lic_1", Status: store.LicenseActive, NextCheckAt: next, KeyCiphertext: []byte("sealed")},
			Installations: []store.Installation{{ID: "ins_1", LicenseID: "lic_1"}},
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour)
	rf := store.RefreshFamily{ID: "fam1", Current: "abcdef", ExpiresAt: expires}
	if err := s.PutRefreshFamily(ctx, rf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSigningKey(ctx, store.SigningKey{ID: "k1", CreatedAt: time.Now()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIdempotent(ctx, "idem1", []byte("answer"), time.Minute); err != nil {
		t.Fatal(err)
	}

	types := map[string]string{
		p + "{lic_1}:state":                     "string",
		redisstore.InstallBucketKey(s, "ins_1"): "hash",
		p + "ins:ins_1":                         "none", // the layout before
		p + "{due}":                             "zset",
		p + "{due}:v":                           "hash",
		p + "rf:{fam1}":                         "hash",
		p + "keys":                              "hash",
		p + "idem:idem1":                        "string",
		"lg:{lic_1}:state":                      "none", // the prefix is used, not the default
		p + "rt:{fam1}:abcdef":                  "none", // no record per token
	}
	for key, want := range types {
		if got, err := raw.Type(ctx, key).Result(); err != nil || got != want {
			t.Errorf("TYPE %s = %q, %v; want %s", key, got, err, want)
		}
	}
	if bk := redisstore.InstallBucketKey(s, "ins_1"); !strings.HasPrefix(bk, p+"insb:") || len(bk) != len(p)+len("insb:")+4 {
		t.Errorf("installation bucket key %q, want %sinsb: and 4 hex digits", bk, p)
	}
	if v, _ := raw.HGet(ctx, redisstore.InstallBucketKey(s, "ins_1"), "ins_1").Result(); v != "lic_1" {
		t.Errorf("installation index holds %q", v)
	}
	wantScore := float64(next.UnixMilli() + 1)
	if got, err := raw.ZScore(ctx, p+"{due}", "lic_1").Result(); err != nil || got != wantScore {
		t.Errorf("due score %v, %v; want %v", got, err, wantScore)
	}
	if v, _ := raw.HGet(ctx, p+"{due}:v", "lic_1").Result(); v != "1" {
		t.Errorf("due version %q, want 1", v)
	}
	// A refresh family's record lives a day past its current token.
	if ttl, err := raw.PTTL(ctx, p+"rf:{fam1}").Result(); err != nil || ttl < 24*time.Hour+59*time.Minute || ttl > 25*time.Hour {
		t.Errorf("refresh family PTTL %s, %v; want about 25h", ttl, err)
	}
	if cur, _ := raw.HGet(ctx, p+"rf:{fam1}", "cur").Result(); cur != "abcdef" {
		t.Errorf("refresh family cur = %q, want abcdef", cur)
	}
	if ttl, err := raw.PTTL(ctx, p+"idem:idem1").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("idempotency PTTL %s, %v; want at most 1m", ttl, err)
	}
	if ttl, _ := raw.PTTL(ctx, p+"{lic_1}:state").Result(); ttl >= 0 {
		t.Errorf("licence state expires (PTTL %s)", ttl)
	}
}

// testLostRacesEndInConflict: when every commit loses to another writer,
// UpdateLicense gives up after a bounded number of attempts with
// ErrConflict, within its timeout.
func (b *backend) testLostRacesEndInConflict(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	rival := b.peer(t, s)
	put := func(s store.Store, status string) error {
		_, err := s.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
			return &store.LicenseState{License: &store.License{ID: "lic_1", Status: status}}, nil
		})
		return err
	}
	if err := put(s, store.LicenseActive); err != nil {
		t.Fatal(err)
	}
	calls := 0
	start := time.Now()
	_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		calls++
		// Another instance commits between this read and its commit.
		if err := put(rival, fmt.Sprint("rival", calls)); err != nil {
			return nil, err
		}
		st.License.Status = store.LicenseRevoked
		return st, nil
	})
	took := time.Since(start)
	t.Logf("gave up after %d attempts in %s", calls, took.Round(time.Millisecond))
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if calls < 2 || took > redisstore.DefaultTimeout+500*time.Millisecond {
		t.Fatalf("%d attempts in %s", calls, took)
	}
	st, _ := s.LicenseState(ctx, "lic_1")
	if st.License.Status != fmt.Sprint("rival", calls) {
		t.Fatalf("stored status %q: the losing write must not land", st.License.Status)
	}
}

// testRivalWriteRerunsFn: fn runs again on the state another instance
// committed, not on its stale copy.
func (b *backend) testRivalWriteRerunsFn(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	rival := b.peer(t, s)
	if _, err := s.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
		return &store.LicenseState{License: &store.License{ID: "lic_1", Status: store.LicenseActive, ActivationsLimit: 1}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		calls++
		if calls == 1 { // the rival takes the last slot meanwhile
			if _, err := rival.UpdateLicense(ctx, "lic_1", activate("ins_rival")); err != nil {
				return nil, err
			}
		}
		return activate("ins_mine")(st)
	})
	if err != errLimit || calls != 2 {
		t.Fatalf("err = %v after %d calls, want errLimit after 2", err, calls)
	}
	st, _ := s.LicenseState(ctx, "lic_1")
	if len(st.Installations) != 1 || st.Installations[0].ID != "ins_rival" {
		t.Fatalf("installations %+v, want only the rival's", st.Installations)
	}
}

// testLateDueIndexWriteIgnored: on Cluster the due entry is written after
// the licence's transaction; an older version's write arriving late must
// not undo a newer one.
func (b *backend) testLateDueIndexWriteIgnored(t *testing.T) {
	ctx := context.Background()
	s := b.store(t, "", redisstore.Options{})
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, at := range []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		if _, err := s.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
			return &store.LicenseState{License: &store.License{ID: "lic_1", Status: store.LicenseActive, NextCheckAt: at}}, nil
		}); err != nil {
			t.Fatalf("write %d: %v", v+1, err)
		}
	}
	// Version 1's index write arrives now.
	if n, err := redisstore.IndexDue(ctx, s, "lic_1", 1, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("late write applied: %d, %v", n, err)
	}
	if next, err := s.NextDue(ctx); err != nil || !next.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("next due = %v, %v; want lic_1 at version 2's time, %v", next, err, t0.Add(2*time.Hour))
	}
	// A newer version applies.
	if n, err := redisstore.IndexDue(ctx, s, "lic_1", 3, time.Time{}); err != nil || n != 1 {
		t.Fatalf("newer write: %d, %v", n, err)
	}
	if next, err := s.NextDue(ctx); err != nil || !next.IsZero() {
		t.Fatalf("entry left after removal: next due %v, %v", next, err)
	}
}

// testClose: Close ends subscriptions but leaves the caller's client open.
func (b *backend) testClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := b.store(t, "", redisstore.Options{})
	ch, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("value after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed by Close")
	}
	if _, err := s.Subscribe(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Subscribe after Close = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after Close = %v: the client is the caller's and stays open", err)
	}
}

// TestOutage stops the server under a store and starts it again on the same
// port: operations fail fast with ErrUnavailable while it is down, and the
// same client and store (and a subscription made before) work again after.
func TestOutage(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	b := newBackend(srv.Addr())
	const timeout = 500 * time.Millisecond
	s := b.store(t, "", redisstore.Options{Timeout: timeout})
	other := b.peer(t, s)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := other.Subscribe(sctx)
	if err != nil {
		t.Fatal(err)
	}
	write := func(id string) error {
		_, err := s.UpdateLicense(ctx, id, func(*store.LicenseState) (*store.LicenseState, error) {
			return &store.LicenseState{License: &store.License{ID: id, Status: store.LicenseActive}}, nil
		})
		return err
	}
	if err := write("lic_before"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice before the outage")
	}

	srv.Stop()
	failAll(t, s, timeout, "with the server down")
	if _, err := s.Subscribe(sctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Subscribe with the server down = %v, want ErrUnavailable", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// go-redis stops dialling after a burst of refused dials and probes
	// once a second, so the first calls after the restart may still fail.
	start := time.Now()
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("still failing %s after the restart: %v", time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("same client and store answer again %s after the restart", time.Since(start).Round(time.Millisecond))
	for name, call := range operations(s) {
		if err := call(ctx); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after the restart: %v", name, err)
		}
	}
	// The subscription made before the outage resumes by itself, and first
	// says that it may have missed changes.
	deadline := time.Now().Add(10 * time.Second)
	resynced := false
	for i := 0; ; i++ {
		id := "lic_after_" + strconv.Itoa(i)
		if err := write(id); err != nil {
			t.Fatal(err)
		}
		wait := time.After(200 * time.Millisecond)
	read:
		for {
			select {
			case c, ok := <-changes:
				if !ok {
					t.Fatal("subscription closed by the outage")
				}
				if c.Resync {
					resynced = true
				}
				if strings.HasPrefix(c.LicenseID, "lic_after_") {
					if !resynced {
						t.Fatal("subscription resumed without a Resync notice")
					}
					t.Logf("subscription resumed %s after the restart", time.Since(start).Round(time.Millisecond))
					return
				}
			case <-wait:
				break read
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription made before the outage hears nothing after it")
		}
	}
}

// TestHungServer freezes the server: connections stay open and nothing
// answers. Operations still end within the timeout.
func TestHungServer(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	b := newBackend(srv.Addr())
	const timeout = 300 * time.Millisecond
	s := b.store(t, "", redisstore.Options{Timeout: timeout})
	if err := s.Ping(ctx); err != nil { // a pooled connection exists
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	failAll(t, s, timeout, "on a hung server")
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the server resumed: %v", err)
	}
}

// failAll calls every operation at once and expects each to fail with
// ErrUnavailable within the store's timeout (plus scheduling slack).
func failAll(t *testing.T, s store.Store, timeout time.Duration, when string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for name, call := range operations(s) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := call(context.Background())
			took := time.Since(start)
			mu.Lock()
			slowest = max(slowest, took)
			mu.Unlock()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s %s = %v, want ErrUnavailable", name, when, err)
			}
			if took > timeout+300*time.Millisecond {
				t.Errorf("%s %s took %s to fail, timeout %s", name, when, took, timeout)
			}
		}()
	}
	wg.Wait()
	t.Logf("every operation %s failed with ErrUnavailable; slowest in %s (timeout %s)", when, slowest.Round(time.Millisecond), timeout)
}

// operations calls every Store method that talks to Redis, once.
func operations(s store.Store) map[string]func(context.Context) error {
	now := time.Now()
	tok := store.RefreshFamily{ID: "fam", Current: "1", ExpiresAt: now.Add(time.Hour)}
	next := tok
	next.Current, next.Previous = "2", "1"
	return map[string]func(context.Context) error{
		"LicenseState": func(ctx context.Context) error { _, err := s.LicenseState(ctx, "lic_1"); return err },
		"UpdateLicense": func(ctx context.Context) error {
			_, err := s.UpdateLicense(ctx, "lic_1", func(*store.LicenseState) (*store.LicenseState, error) {
				return &store.LicenseState{License: &store.License{ID: "lic_1", Status: store.LicenseActive}}, nil
			})
			return err
		},
		"InstallationLicense": func(ctx context.Context) error { _, err := s.InstallationLicense(ctx, "ins_1"); return err },
		"PutRefreshFamily":    func(ctx context.Context) error { return s.PutRefreshFamily(ctx, tok) },
		"RefreshFamily":       func(ctx context.Context) error { _, err := s.RefreshFamily(ctx, tok.ID); return err },
		"RotateRefreshFamily": func(ctx context.Context) error {
			_, err := s.RotateRefreshFamily(ctx, tok.Current, next)
			if errors.Is(err, store.ErrRefreshSpent) || errors.Is(err, store.ErrNotFound) {
				err = nil
			}
			return err
		},
		"DeleteRefreshFamily": func(ctx context.Context) error { return s.DeleteRefreshFamily(ctx, tok.ID) },
		"SigningKeys":         func(ctx context.Context) error { _, err := s.SigningKeys(ctx); return err },
		"AddSigningKey": func(ctx context.Context) error {
			_, err := s.AddSigningKey(ctx, store.SigningKey{ID: "k", CreatedAt: now}, now)
			return err
		},
		"Idempotent": func(ctx context.Context) error { _, err := s.Idempotent(ctx, "k"); return err },
		"PutIdempotent": func(ctx context.Context) error {
			_, err := s.PutIdempotent(ctx, "k", []byte("v"), time.Minute)
			return err
		},
		"Ping": func(ctx context.Context) error { return s.Ping(ctx) },
	}
}

// Issue 20, #8: Persistence reads how Redis keeps data across a restart;
// a Redis that refuses CONFIG is "unknown", not an error; a Redis that is
// down is an error.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"none", nil, store.PersistenceNone},
		{"aof", []string{"--appendonly", "yes"}, "aof"},
		{"rdb", []string{"--save", "3600 1"}, "rdb"},
		{"both", []string{"--appendonly", "yes", "--save", "3600 1"}, "aof+rdb"},
		{"config refused", []string{"--rename-command", "CONFIG", ""}, store.PersistenceUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.NewServerArgs(t, c.args...)
			s := newBackend(srv.Addr()).store(t, "", redisstore.Options{Timeout: time.Second})
			got, err := s.Persistence(ctx)
			if err != nil || got != c.want {
				t.Fatalf("Persistence = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	srv := redistest.NewServer(t)
	s := newBackend(srv.Addr()).store(t, "", redisstore.Options{Timeout: 300 * time.Millisecond})
	srv.Stop()
	if _, err := s.Persistence(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Persistence of a stopped Redis: %v, want ErrUnavailable", err)
	}
}

package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// testSubscribe: every subscriber hears of every committed write, its own
// handle's and (with WithPeer) another instance's, and its channel closes
// when its context ends.
func testSubscribe(t *testing.T, h *harness) {
	s := h.open(t)
	writer := s
	if h.cfg.peer != nil {
		writer = h.cfg.peer(t, s)
	}
	actx, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	a, err := s.Subscribe(actx)
	if err != nil {
		t.Fatal(err)
	}
	b := subscribe(t, s)

	start := time.Now()
	put(t, writer, sampleState())
	for name, ch := range map[string]<-chan store.Change{"a": a, "b": b} {
		got := noticesUntil(t, ch, "lic_1")
		if len(got) != 1 {
			t.Fatalf("%s: notices %+v, want one for lic_1", name, got)
		}
	}
	t.Logf("change notice delivered %s after the write began (writer is another handle: %v)", time.Since(start), writer != s)

	// A handle hears its own writes too (old and new config of one
	// instance share it).
	put(t, s, license("lic_2"))
	noticesUntil(t, a, "lic_2")
	noticesUntil(t, b, "lic_2")
	if writer != s {
		p := subscribe(t, writer)
		put(t, s, license("lic_3"))
		noticesUntil(t, p, "lic_3")
		noticesUntil(t, b, "lic_3")
	}

	cancelA()
	waitClosed(t, a, "its context was cancelled")
	// Writes after a subscriber left still reach the others.
	put(t, writer, license("lic_4"))
	noticesUntil(t, b, "lic_4")

	// A subscription whose context has already ended closes at once.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if ch, err := s.Subscribe(done); err == nil {
		waitClosed(t, ch, "subscribing with a cancelled context")
	}
}

func testSlowSubscriberDoesNotBlockWriters(t *testing.T, h *harness) {
	s := h.open(t)
	subscribe(t, s) // never read
	const n = 300
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range n {
			if _, err := s.UpdateLicense(context.Background(), "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
				if st.License == nil {
					st.License = &store.License{ID: "lic_1", Status: store.LicenseActive}
				}
				st.License.UpdatedAt = t0.Add(time.Duration(i) * time.Second)
				return st, nil
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d writes not done after 30s: blocked by a subscriber that does not read", n)
	}
	// The subscriber is still usable afterwards: it may have missed
	// notices, but it hears new ones once it reads again.
	ch := subscribe(t, s)
	put(t, s, license("lic_2"))
	noticesUntil(t, ch, "lic_2")
}

// testKeyRotationNotice: adding a signing key announces Change{Keys: true}
// to every instance; a refused rotation announces nothing.
func testKeyRotationNotice(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	listeners := map[string]<-chan store.Change{"same handle": subscribe(t, s)}
	if h.cfg.peer != nil {
		listeners["other handle"] = subscribe(t, h.cfg.peer(t, s))
	}
	keyNotices := func(changes []store.Change) int {
		n := 0
		for _, c := range changes {
			if c.Keys {
				n++
				if c.LicenseID != "" {
					t.Errorf("key notice %+v names a licence", c)
				}
			} else if c.LicenseID == "" {
				t.Errorf("notice %+v names nothing", c)
			}
		}
		return n
	}

	if _, err := s.AddSigningKey(ctx, signingKey("k1", t0), t0); err != nil {
		t.Fatal(err)
	}
	for name, ch := range listeners {
		got := noticesUntilFunc(t, ch, "keys", func(c store.Change) bool { return c.Keys })
		if n := keyNotices(got); n != 1 {
			t.Fatalf("%s: %d key notices after adding a key, want 1", name, n)
		}
	}

	// Another instance rotated first: nothing added, nothing announced.
	if _, err := s.AddSigningKey(ctx, signingKey("k2", t0.Add(time.Hour)), t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, ch := range listeners {
		if n := keyNotices(settle(t, s, ch, "lic_sentinel_"+strings.ReplaceAll(name, " ", "_"))); n != 0 {
			t.Fatalf("%s: %d key notices after a refused rotation, want 0", name, n)
		}
	}
}

// testOverflowSendsResync: a subscriber that fell behind and lost notices
// is told so by a Resync once it reads again, so it drops its cache
// instead of serving what changed for up to its TTL.
func testOverflowSendsResync(t *testing.T, h *harness) {
	s := h.open(t)
	ch := subscribe(t, s) // not read while the writes happen
	const n = 600         // more than any backend buffers for one subscriber
	for i := range n {
		put(t, s, license(fmt.Sprintf("lic_%d", i)))
	}
	// Read everything: the lost notices must be covered by a Resync, which
	// comes at the latest once the reader has caught up; the sentinel
	// written after that shows the feed drained.
	got := noticesUntilFunc(t, ch, "a Resync", func(c store.Change) bool { return c.Resync })
	got = append(got, settle(t, s, ch, "lic_sentinel")...)
	// Every notice is dropped only while a Resync waits unread in the full
	// channel, so the Resync read above covers all that were lost.
	seen := map[string]bool{}
	for _, c := range got {
		seen[c.LicenseID] = true
	}
	missed := 0
	for i := range n {
		if !seen[fmt.Sprintf("lic_%d", i)] {
			missed++
		}
	}
	if missed == 0 {
		t.Fatalf("no notice lost with %d unread: the test no longer overflows the buffer", n)
	}
}

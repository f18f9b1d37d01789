package httpapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// fakeClock is a settable clock for the limiters.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestLimiter(r upstreams.Rate, c *fakeClock) *Limiter {
	l := NewLimiter(r)
	l.now = c.now
	return l
}

func testIP(i int) string {
	return "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
}

// A flood of distinct addresses, faster than buckets refill, keeps the map
// at its cap: each new address past it costs one eviction, not a rescan.
func TestIPLimiterFloodStaysBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	fail := newTestLimiter(upstreams.Rate{Calls: 20, Period: 10 * time.Minute}, clock)
	req := newTestLimiter(upstreams.Rate{Calls: 120, Period: time.Minute}, clock)
	const n = 50_000
	for i := range n {
		ip := testIP(i)
		if ok, _ := req.Allow(ip); !ok {
			t.Fatalf("first request from %s refused", ip)
		}
		fail.Allow(ip)
		clock.t = clock.t.Add(time.Millisecond) // 50s in all: nothing refills
		if i%1000 == 0 {
			if got := len(fail.buckets); got > maxIPBuckets {
				t.Fatalf("after %d addresses the failure limiter holds %d buckets (cap %d)", i+1, got, maxIPBuckets)
			}
		}
	}
	if got := len(fail.buckets); got > maxIPBuckets {
		t.Fatalf("failure limiter holds %d buckets (cap %d)", got, maxIPBuckets)
	}
	if got := len(req.buckets); got > maxIPBuckets {
		t.Fatalf("request limiter holds %d buckets (cap %d)", got, maxIPBuckets)
	}
}

// A sweep runs at most once per refill interval, and when it runs it drops
// the refilled buckets rather than evicting a busy one.
func TestIPLimiterSweepsOncePerInterval(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newTestLimiter(upstreams.Rate{Calls: 2, Period: time.Minute}, clock)
	for i := range maxIPBuckets {
		l.Allow(testIP(i))
	}
	clock.t = clock.t.Add(time.Minute) // every bucket has refilled
	hot := "192.0.2.1"
	l.Allow(hot)
	l.Allow(hot)
	if got := len(l.buckets); got != 1 {
		t.Fatalf("after a due sweep %d buckets remain, want only the new one", got)
	}
	if ok, wait := l.Allow(hot); ok || wait <= 0 {
		t.Fatalf("hot address allowed a third call (wait %v)", wait)
	}
	swept := l.swept
	for i := range maxIPBuckets + 5 {
		l.Allow(testIP(i))
	}
	if !l.swept.Equal(swept) {
		t.Fatal("swept again within one refill interval")
	}
	if got := len(l.buckets); got > maxIPBuckets {
		t.Fatalf("%d buckets, cap %d", got, maxIPBuckets)
	}
}

// A call given back leaves the bucket as it was: a client whose
// activations succeed leaves no failure state behind, and a concurrent
// burst is bounded by the calls taken before the work.
func TestIPLimiterRefund(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newTestLimiter(upstreams.Rate{Calls: 2, Period: time.Minute}, clock)
	for range 100 {
		if ok, _ := l.Allow("192.0.2.7"); !ok {
			t.Fatal("refunded calls ran out")
		}
		l.Refund("192.0.2.7")
	}
	if got := len(l.buckets); got != 0 {
		t.Fatalf("refunded calls left %d buckets", got)
	}
	// Taken and not (yet) given back: the third is refused.
	l.Allow("192.0.2.7")
	l.Allow("192.0.2.7")
	if ok, wait := l.Allow("192.0.2.7"); ok || wait != 30*time.Second {
		t.Fatalf("third call: %v, wait %v", ok, wait)
	}
	l.Refund("192.0.2.7") // one of the two succeeded after all
	if ok, _ := l.Allow("192.0.2.7"); !ok {
		t.Fatal("a refunded call is not there")
	}
}

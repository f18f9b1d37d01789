package e2e

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// withQuota adds a quota line to the /convert gate of either template.
func withQuota(template, quota string) string {
	out := strings.Replace(template, "\t\t\tproducts converter-pro\n\t\t}\n\t\treverse_proxy",
		"\t\t\tproducts converter-pro\n\t\t\tquota "+quota+"\n\t\t}\n\t\treverse_proxy", 1)
	return strings.Replace(out, "\t\t\ton_store_error allow_stale {{STALE}}\n\t\t}\n\t\treverse_proxy",
		"\t\t\ton_store_error allow_stale {{STALE}}\n\t\t\tquota "+quota+"\n\t\t}\n\t\treverse_proxy", 1)
}

// Acceptance 2 of issue 12, the part a real clock can show, on both
// stores: quota 3/d admits three with RateLimit counting down, the fourth
// is 429 quota_exceeded with Retry-After (until the next UTC day) and the
// RateLimit fields; another installation is unaffected. (The day turning
// over is TestQuotaPerDay's, on a fake clock.)
func TestQuotaPerDayOnBothStores(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			up := httptest.NewServer(&recordingUpstream{})
			t.Cleanup(up.Close)
			g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
			if backend == "redis" {
				g.template = redisTemplate
				g.vars["REDIS"], g.vars["REDIS_AUTH"], g.vars["CACHE_TTL"], g.vars["STALE"] = redistest.NewServer(t).Addr(), "", "30s", "10m"
			}
			g.template = withQuota(g.template, "3/d")
			g.start()
			a := g.activate("KEY-AAAA-0001", "acme.com")
			expectStatus(t, a, http.StatusCreated, "")
			b := g.activate("KEY-AAAA-0004", "dave.com")
			expectStatus(t, b, http.StatusCreated, "")
			untilMidnight := time.Until(time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour))
			for left := 2; left >= 0; left-- {
				r := g.call(a.str("access_token"))
				expectStatus(t, r, http.StatusOK, "")
				if p := r.header.Get("RateLimit-Policy"); p != `"quota";q=3;w=86400` {
					t.Fatalf("RateLimit-Policy %q", p)
				}
				if rl := r.header.Get("RateLimit"); !strings.HasPrefix(rl, `"quota";r=`+strconv.Itoa(left)+";t=") {
					t.Fatalf("RateLimit %q, want %d left", rl, left)
				}
			}
			r := g.call(a.str("access_token"))
			expectStatus(t, r, http.StatusTooManyRequests, "quota_exceeded")
			retry, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || time.Duration(retry)*time.Second < untilMidnight-time.Minute || time.Duration(retry)*time.Second > untilMidnight+time.Minute {
				t.Fatalf("Retry-After %q, want about %s (the next UTC day)", r.header.Get("Retry-After"), untilMidnight.Round(time.Second))
			}
			if rl := r.header.Get("RateLimit"); rl != `"quota";r=0;t=`+strconv.Itoa(retry) || r.header.Get("RateLimit-Policy") == "" {
				t.Fatalf("429 RateLimit %q, policy %q", rl, r.header.Get("RateLimit-Policy"))
			}
			other := g.call(b.str("access_token"))
			expectStatus(t, other, http.StatusOK, "")
			if rl := other.header.Get("RateLimit"); !strings.HasPrefix(rl, `"quota";r=2;`) {
				t.Fatalf("another installation's RateLimit %q", rl)
			}
		})
	}
}

// Two gateways on one Redis with quota 100/m: 300 requests spread over
// both (paced, 20 ms apart, alternating) admit at most 100 plus what the
// other gateway admits before a sync tells it (docs/gate.md: the overshoot is at
// most what the other instances admit in one sync interval, and never
// more than (N-1)x100). Counted per minute window, should the run cross
// one.
func TestQuotaAcrossTwoGatewaysOnRedis(t *testing.T) {
	srv := redistest.NewServer(t)
	gw := make([]*gateway, 2)
	for i := range gw {
		up := httptest.NewServer(&recordingUpstream{})
		t.Cleanup(up.Close)
		g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
		g.template = withQuota(redisTemplate, "100/m")
		g.vars["REDIS"], g.vars["REDIS_AUTH"], g.vars["CACHE_TTL"], g.vars["STALE"] = srv.Addr(), "", "30s", "10m"
		g.start()
		gw[i] = g
	}
	a := gw[0].activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	tok := a.str("access_token")
	admitted := map[time.Time][2]int{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 300; i++ {
		<-tick.C
		window := time.Now().UTC().Truncate(time.Minute)
		r := gw[i%2].call(tok)
		switch r.status {
		case http.StatusOK:
			n := admitted[window]
			n[i%2]++
			admitted[window] = n
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	for w, n := range admitted {
		total := n[0] + n[1]
		t.Logf("window %s: admitted %d (%d + %d) of the requests in it, quota 100/m over two gateways", w.Format("15:04"), total, n[0], n[1])
		if total > 200 || n[0] > 100 || n[1] > 100 {
			t.Fatalf("admitted %d (%d + %d) in one window: over 100 + (N-1)x100", total, n[0], n[1])
		}
	}
}

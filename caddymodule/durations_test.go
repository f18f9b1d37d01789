package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/licensegate/licensegate/upstreams"
)

// Issue 20, contract item 1: seconds are accepted for every interval an
// author may want to watch in staging, each with one warning that names
// the option, its floor and what it will do; below 1s is refused.
func TestShortDurationsWarnOnce(t *testing.T) {
	sec := func(n int) caddy.Duration { return caddy.Duration(time.Duration(n) * time.Second) }
	grace, cooldown := sec(2), sec(3)
	pc := &Product{
		Sources:     []string{"static"},
		Recheck:     &RecheckConfig{Every: sec(1), ConfirmWindow: sec(5)},
		ReleaseIdle: sec(2), ExpiryGrace: &grace, MoveCooldown: &cooldown,
	}
	core, logs := observer.New(zap.WarnLevel)
	sources := map[string]upstreams.Source{"static": nil}
	p, err := pc.build(zap.New(core), "p", sources)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if p.Recheck.Every != time.Second || p.Rules.ReleaseIdle != 2*time.Second {
		t.Fatalf("every %s, release_idle %s: want 1s and 2s", p.Recheck.Every, p.Rules.ReleaseIdle)
	}
	want := map[string]string{
		"recheck every": "below 1h0m0s", "recheck confirm_window": "below 1h0m0s",
		"release_idle": "below 10m0s", "expiry_grace": "below 1h0m0s", "move_cooldown": "below 1h0m0s",
	}
	seen := map[string]int{}
	for _, e := range logs.All() {
		option, _ := e.ContextMap()["option"].(string)
		seen[option]++
		if w, ok := want[option]; !ok || !strings.Contains(e.Message, "product p: "+option+" is "+w) {
			t.Errorf("warning %q (option %q): want it to name the product, the option and its floor", e.Message, option)
		}
	}
	for option := range want {
		if seen[option] != 1 {
			t.Errorf("%s: %d warnings, want 1", option, seen[option])
		}
	}

	pc.ReleaseIdle = caddy.Duration(500 * time.Millisecond)
	if _, err := pc.build(nil, "p", sources); err == nil || !strings.Contains(err.Error(), "product p: release_idle: 500ms is shorter than 1s") {
		t.Errorf("release_idle 500ms: %v, want it refused naming the option", err)
	}
	pc.ReleaseIdle = 0
	pc.Recheck.Every = caddy.Duration(time.Millisecond)
	if _, err := pc.build(nil, "p", sources); err == nil || !strings.Contains(err.Error(), "product p: recheck every: 1ms is shorter than 1s") {
		t.Errorf("recheck every 1ms: %v, want it refused naming the option", err)
	}
}

// Values at or above the floor, and zero (the default), warn about nothing.
func TestDefaultDurationsWarnNothing(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	day := caddy.Duration(24 * time.Hour)
	pc := &Product{Sources: []string{"static"}, Recheck: &RecheckConfig{Every: day}, ReleaseIdle: day, MoveCooldown: &day}
	if _, err := pc.build(zap.New(core), "p", map[string]upstreams.Source{"static": nil}); err != nil {
		t.Fatal(err)
	}
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d warnings for durations above their floors: %v", n, logs.All())
	}
}

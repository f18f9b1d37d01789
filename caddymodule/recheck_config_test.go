package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

// TestRecheckConfig: the JSON product's recheck and expiry_grace become
// policy's rules with their defaults, and a bad value is refused at
// provision with an error naming the option.
func TestRecheckConfig(t *testing.T) {
	var pc Product
	raw := `{"sources":["static"],"recheck":{"every":21600000000000,"mode":"auto","confirm":2,"auto_suspend_not_found":true},"expiry_grace":0}`
	if err := json.Unmarshal([]byte(raw), &pc); err != nil {
		t.Fatal(err)
	}
	r, err := pc.Recheck.rules(nil, "p", pc.ExpiryGrace)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.RecheckRules{Every: 6 * time.Hour, Mode: policy.RecheckAuto, Confirm: 2, ConfirmWindow: policy.DefaultConfirmWindow,
		AutoSuspendNotFound: true, ExpiryGrace: time.Nanosecond}
	if r != want {
		t.Fatalf("rules %+v, want %+v", r, want)
	}
	var none *RecheckConfig
	if r, err := none.rules(nil, "p", nil); err != nil || r != (policy.RecheckRules{}).WithDefaults() {
		t.Fatalf("defaults: %+v, %v", r, err)
	}
	neg := caddy.Duration(-1)
	for option, rc := range map[string]*RecheckConfig{
		"recheck every":          {Every: caddy.Duration(10 * time.Millisecond)},
		"recheck mode":           {Mode: "sometimes"},
		"recheck confirm":        {Confirm: -1},
		"recheck confirm_window": {ConfirmWindow: -1},
	} {
		if _, err := rc.rules(nil, "p", nil); err == nil || !strings.Contains(err.Error(), "product p: "+option) {
			t.Errorf("%s: %v, want an error naming it", option, err)
		}
	}
	if _, err := none.rules(nil, "p", &neg); err == nil || !strings.Contains(err.Error(), "expiry_grace") {
		t.Errorf("negative expiry_grace: %v", err)
	}
}

package policy

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Issue 20, contract item 5: local installs are shown as they are; a
// public IP keeps its first and last group.
func TestMaskDomain(t *testing.T) {
	for in, want := range map[string]string{
		"buyer.com":             "b***r.com",
		"shop.buyer.com":        "s***p.b***r.com",
		"ab.io":                 "a*.io",
		"x.org":                 "x*.org",
		"localhost":             "localhost",
		"site.test":             "site.test",
		"shop.localhost":        "shop.localhost",
		"127.0.0.1":             "127.0.0.1",
		"::1":                   "::1",
		"203.0.113.7":           "203.*.*.7",
		"10.1.2.0":              "10.*.*.0",
		"2001:db8::1":           "2001:*:1",
		"2001:db8:0:0:0:0:0:ab": "2001:*:ab",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"xn--bcher-kva.de":      "x***a.de",
	} {
		if got := MaskDomain(in); got != want {
			t.Errorf("MaskDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClientNetworkAndRateKey(t *testing.T) {
	for _, tt := range []struct{ ip, network, rate string }{
		{"203.0.113.7", "203.0.113.0/24", "203.0.113.7/32"},
		{"203.0.113.250", "203.0.113.0/24", "203.0.113.250/32"},
		{"::ffff:203.0.113.7", "203.0.113.0/24", "203.0.113.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1::/48", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1::/48", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/48", "fe80::/64"},
		{"not-an-ip", "", "not-an-ip"},
		{"", "", ""},
	} {
		if got := ClientNetwork(tt.ip); got != tt.network {
			t.Errorf("ClientNetwork(%q) = %q, want %q", tt.ip, got, tt.network)
		}
		if got := RateKey(tt.ip); got != tt.rate {
			t.Errorf("RateKey(%q) = %q, want %q", tt.ip, got, tt.rate)
		}
	}
}

func TestLeakRuleLimit(t *testing.T) {
	for _, tt := range []struct {
		rule  LeakRule
		slots int
		want  int
	}{
		{LeakRule{}, 1, 5}, {LeakRule{Threshold: 3}, 1, 3}, {LeakRule{}, 10, 20}, {LeakRule{Threshold: 30}, 10, 30},
	} {
		if got := tt.rule.Limit(tt.slots); got != tt.want {
			t.Errorf("%+v.Limit(%d) = %d, want %d", tt.rule, tt.slots, got, tt.want)
		}
	}
}

func TestLeakRuleObserve(t *testing.T) {
	r := LeakRule{Threshold: 3, Window: time.Hour}
	var seen []Sighting
	var leaked bool
	at := now
	see := func(kind, value string) {
		seen, leaked = r.Observe(seen, Sighting{Kind: kind, Value: value, At: at}, 1)
	}
	for i := range 3 {
		see(SightDomain, fmt.Sprintf("d%d.com", i))
		if leaked {
			t.Fatalf("leak after %d distinct domains, threshold 3", i+1)
		}
	}
	see(SightDomain, "d0.com") // the same domain again is not a new one
	see(SightNetwork, "198.51.100.0/24")
	see(SightNetwork, "198.51.101.0/24")
	if leaked {
		t.Fatal("networks and domains are counted apart")
	}
	see(SightDomain, "d3.com")
	if !leaked {
		t.Fatal("a fourth distinct domain within the window is a leak")
	}

	// Outside the window they are forgotten.
	at = now.Add(2 * time.Hour)
	see(SightDomain, "later.com")
	if leaked || len(seen) != 1 {
		t.Fatalf("after the window: leaked=%v seen=%v", leaked, seen)
	}
}

func TestLeakRuleObserveStaysBounded(t *testing.T) {
	r := LeakRule{Threshold: 5, Window: 24 * time.Hour}
	var seen []Sighting
	for i := range 10000 {
		seen, _ = r.Observe(seen, Sighting{Kind: SightDomain, Value: fmt.Sprintf("site%d.com", i), At: now.Add(time.Duration(i) * time.Second)}, 1)
		seen, _ = r.Observe(seen, Sighting{Kind: SightNetwork, Value: fmt.Sprintf("net%d", i), At: now.Add(time.Duration(i) * time.Second)}, 1)
	}
	if len(seen) != 2*(r.Limit(1)+1) {
		t.Fatalf("%d sightings kept, want %d", len(seen), 2*(r.Limit(1)+1))
	}
	if last := seen[len(seen)-1]; last.Value != "net9999" {
		t.Fatalf("newest sighting %v not kept", last)
	}
}

func TestFreeInstallCaps(t *testing.T) {
	rules := Rules{Activations: 1, LocalDomains: Free, StagingSubdomains: Free}
	lic := License{Status: "active"}
	var ins []Installation
	accepted := 0
	for i := range 50 {
		d, ref := rules.DecideActivation(lic, ins, fmt.Sprintf("site%d.test", i), "", now)
		if ref != nil {
			if ref.Code != CodeActivationLimit || len(ref.Holders) != DefaultLocalCap {
				t.Fatalf("refusal %+v", ref)
			}
			continue
		}
		accepted++
		ins = append(ins, Installation{ID: fmt.Sprint("l", i), Domain: fmt.Sprintf("site%d.test", i), Class: d.Class, Active: true})
	}
	if accepted != DefaultLocalCap {
		t.Fatalf("%d local installs accepted, want %d", accepted, DefaultLocalCap)
	}

	// Staging: three per production domain; another production domain has
	// its own three.
	rules.Activations = 2
	ins = []Installation{
		{ID: "p1", Domain: "acme.com", Class: ClassProduction, Active: true},
		{ID: "p2", Domain: "other.org", Class: ClassProduction, Active: true},
	}
	count := map[string]int{}
	for i := range 10 {
		for _, parent := range []string{"acme.com", "other.org"} {
			domain := fmt.Sprintf("s%d.%s", i, parent)
			d, ref := rules.DecideActivation(lic, ins, domain, "", now)
			if ref != nil {
				if ref.Code != CodeActivationLimit {
					t.Fatalf("refusal %+v", ref)
				}
				for _, h := range ref.Holders {
					if !IsSubdomainOf(h.Domain, parent) {
						t.Fatalf("staging refusal under %s lists %s", parent, h.Domain)
					}
				}
				continue
			}
			if d.Class != ClassStaging || d.UsesSlot {
				t.Fatalf("decision %+v for %s", d, domain)
			}
			count[parent]++
			ins = append(ins, Installation{ID: domain, Domain: domain, Class: ClassStaging, Active: true})
		}
	}
	if count["acme.com"] != DefaultStagingCap || count["other.org"] != DefaultStagingCap {
		t.Fatalf("staging accepted %v, want %d each", count, DefaultStagingCap)
	}

	// A configured cap applies; a slot-holding treatment is bounded by the
	// slots instead.
	capped := Rules{Activations: 1, LocalDomains: Free, LocalCap: 1}
	one := []Installation{{ID: "l", Domain: "a.test", Class: ClassLocal, Active: true}}
	if _, ref := capped.DecideActivation(lic, one, "b.test", "", now); ref == nil || ref.Code != CodeActivationLimit {
		t.Fatalf("local_domains free 1: second local install %v", ref)
	}
	if _, ref := capped.DecideActivation(lic, one, "a.test", "", now); ref != nil {
		t.Fatalf("re-activating the capped install itself refused: %v", ref)
	}
}

func TestPrunable(t *testing.T) {
	old := now.Add(-31 * 24 * time.Hour)
	recent := now.Add(-time.Hour)
	ins := []Installation{
		{ID: "active", Active: true, CreatedAt: old},
		{ID: "old", EndedAt: old},
		{ID: "recent", EndedAt: recent},
		{ID: "never-ended-marker"}, // inactive with no end time: kept until the bound
	}
	if got := Prunable(ins, now); !reflect.DeepEqual(got, []string{"old"}) {
		t.Fatalf("Prunable = %v, want [old]", got)
	}
	var many []Installation
	for i := range MaxEnded + 7 {
		many = append(many, Installation{ID: fmt.Sprint(i), EndedAt: now.Add(-time.Duration(MaxEnded+7-i) * time.Minute)})
	}
	many = append(many, Installation{ID: "live", Active: true})
	got := Prunable(many, now)
	if len(got) != 7 || got[0] != "0" || got[6] != "6" {
		t.Fatalf("Prunable over the bound = %v, want the 7 oldest", got)
	}
}

func TestLeakRuleWatch(t *testing.T) {
	r := LeakRule{}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var seen []Sighting
	var changed bool
	var lock string
	for i := range 5 {
		seen, changed, lock = r.Watch(seen, Attempt{Domain: fmt.Sprintf("d%d.com", i), Production: true, At: t0}, 1)
		if !changed || lock != "" {
			t.Fatalf("domain %d: changed %v, lock %q", i, changed, lock)
		}
	}
	// The same domain again within the slack: nothing worth a write.
	if _, changed, _ = r.Watch(seen, Attempt{Domain: "d0.com", Production: true, At: t0.Add(time.Minute)}, 1); changed {
		t.Fatal("a repeated domain within the slack changed the sightings")
	}
	if _, changed, _ = r.Watch(seen, Attempt{Domain: "d0.com", Production: true, At: t0.Add(2 * time.Hour)}, 1); !changed {
		t.Fatal("a repeated domain past the slack did not refresh its time")
	}
	// Local and staging attempts are not production domains.
	if _, changed, _ = r.Watch(seen, Attempt{Domain: "x.test", At: t0}, 1); changed {
		t.Fatal("a non-production attempt was recorded")
	}
	_, _, lock = r.Watch(seen, Attempt{Domain: "d5.com", Production: true, At: t0}, 1)
	if lock != "leak_threshold: activations attempted on more than 5 distinct production domains within 24h" {
		t.Fatalf("lock %q", lock)
	}
	var nets []Sighting
	for i := range 6 {
		nets, _, lock = r.Watch(nets, Attempt{Domain: "buyer.com", Production: true, Network: fmt.Sprintf("203.0.%d.0/24", i), At: t0}, 1)
	}
	if lock != "leak_threshold: re-activations from more than 5 distinct client networks within 24h" || len(nets) != 7 {
		t.Fatalf("lock %q with %d sightings", lock, len(nets))
	}
}

// Issue 20, L2: a label holding the site's name does not confirm the
// buyer's domain in a 409.
func TestMaskLabel(t *testing.T) {
	for _, c := range []struct{ label, domain, want string }{
		{"Main shop", "buyer.com", "Main shop"},
		{"buyer.com live", "buyer.com", "b***r.com live"},
		{"Buyer production", "shop.buyer.com", "b***r production"},
		{"installer", "buyer.com", "installer"},
		{"203.0.113.7 box", "203.0.113.7", "203.*.*.7 box"},
		{"my laptop", "localhost", "my laptop"},
		{"", "buyer.com", ""},
		{"İstanbul buyer", "buyer.com", ""}, // lower case moves bytes: no label rather than an unmasked one
	} {
		if got := MaskLabel(c.label, c.domain); got != c.want {
			t.Errorf("MaskLabel(%q, %q) = %q, want %q", c.label, c.domain, got, c.want)
		}
	}
}

package policy

import (
	"testing"
	"time"
)

func TestStagingHost(t *testing.T) {
	extra := []string{".staging.acme.dev"}
	for domain, want := range map[string]bool{
		"acme-staging.wpengine.com":       true,
		"staging-acme.kinsta.cloud":       true,
		"wordpress-123.cloudwaysapps.com": true,
		"dev-acme.pantheonsite.io":        true,
		"abc123.ngrok-free.app":           true,
		"wpengine.com":                    false, // the suffix itself is the platform's own site
		"notwpengine.com":                 false,
		"acme.com":                        false,
		"shop.staging.acme.dev":           true, // the author's own
		"staging.acme.dev":                false,
	} {
		if got := StagingHost(domain, extra); got != want {
			t.Errorf("StagingHost(%q) = %v, want %v", domain, got, want)
		}
	}
	for in, want := range map[string]string{"acme.dev": ".acme.dev", "*.Acme.Dev": ".acme.dev", ".acme.dev": ".acme.dev", "dev": "", "": "", "a b.dev": ""} {
		got, ok := NormalizeSuffix(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeSuffix(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// TestPlatformStagingIsFreeWithinItsCap: an activation on a hosting
// platform's staging host is staging and free, with no production domain
// yet and after one arrives; the cap counts them per licence (the 4th
// over a cap of 3 is refused); the production slot is untouched.
func TestPlatformStagingIsFreeWithinItsCap(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := Rules{Activations: 1, LocalDomains: Free, StagingSubdomains: Free, StagingCap: 3}
	lic := License{Status: "active"}
	var ins []Installation
	activate := func(domain string) (Decision, *Refusal) {
		t.Helper()
		d, ref := r.DecideActivation(lic, ins, domain, "", now)
		if ref == nil {
			ins = append(ins, Installation{ID: "ins_" + domain, Domain: domain, Class: d.Class, Active: true})
		}
		return d, ref
	}
	// staging before production: free
	if d, ref := activate("acme-staging.wpengine.com"); ref != nil || d.Class != ClassStaging || d.UsesSlot {
		t.Fatalf("a WP Engine staging host first = %+v, %v; want free staging", d, ref)
	}
	if d, ref := activate("acme.com"); ref != nil || d.Class != ClassProduction || !d.UsesSlot {
		t.Fatalf("production after it = %+v, %v", d, ref)
	}
	// still free once production is there
	if n := len(r.SlotHolders(ins, "")); n != 1 {
		t.Errorf("%d installations hold slots, want 1 (production only)", n)
	}
	for _, d := range []string{"staging-acme.kinsta.cloud", "acme.cloudwaysapps.com"} {
		if dec, ref := activate(d); ref != nil || dec.Class != ClassStaging || dec.UsesSlot {
			t.Fatalf("%s = %+v, %v", d, dec, ref)
		}
	}
	_, ref := activate("abc.ngrok-free.app")
	if ref == nil || ref.Code != CodeActivationLimit || len(ref.Holders) != 3 {
		t.Errorf("the 4th platform staging host = %+v, want activation_limit_reached listing the 3", ref)
	}
	// a subdomain staging of the production domain has its own cap
	if dec, ref := activate("staging.acme.com"); ref != nil || dec.Class != ClassStaging {
		t.Errorf("staging.acme.com = %+v, %v", dec, ref)
	}
	// deactivating production leaves the platform hosts staging (free)
	for i := range ins {
		if ins[i].Domain == "acme.com" {
			ins[i].Active = false
		}
	}
	for _, in := range ins {
		if in.Active && StagingHost(in.Domain, nil) && r.EffectiveClass(in, ins) != ClassStaging {
			t.Errorf("%s counts as %s without a production domain", in.Domain, r.EffectiveClass(in, ins))
		}
	}
}

// TestMarkStaging: a buyer's own production installation marked staging
// frees its slot and stays staging whatever the licence holds; the mark
// shares the platform hosts' cap; only active production installations,
// and only where staging is free.
func TestMarkStaging(t *testing.T) {
	r := Rules{Activations: 1, StagingSubdomains: Free, StagingCap: 2}
	ins := []Installation{
		{ID: "a", Domain: "acme.com", Class: ClassProduction, Active: true},
		{ID: "b", Domain: "acme-stage.com", Class: ClassStaging, Active: true, Marked: true},
		{ID: "c", Domain: "x.wpengine.com", Class: ClassStaging, Active: true},
		{ID: "d", Domain: "old.com", Class: ClassProduction},
	}
	if c := r.EffectiveClass(ins[1], ins); c != ClassStaging {
		t.Fatalf("a marked installation is %s", c)
	}
	if n := len(r.SlotHolders(ins, "")); n != 1 {
		t.Fatalf("%d slot holders, want 1 (the marked one holds none)", n)
	}
	if ref := r.MarkStaging("a", ins); ref == nil || ref.Code != CodeActivationLimit {
		t.Fatalf("over the cap of 2: %+v", ref)
	}
	if ref := (Rules{StagingSubdomains: Free, StagingCap: 3}).MarkStaging("a", ins); ref != nil {
		t.Fatalf("within the cap: %+v", ref)
	}
	for name, c := range map[string]struct {
		r  Rules
		id string
	}{
		"inactive":       {Rules{StagingCap: 5}, "d"},
		"staging":        {Rules{StagingCap: 5}, "c"},
		"unknown":        {Rules{StagingCap: 5}, "z"},
		"staging slots":  {Rules{StagingSubdomains: Slot}, "a"},
		"staging denied": {Rules{StagingSubdomains: Deny}, "a"},
	} {
		if ref := c.r.MarkStaging(c.id, ins); ref == nil || ref.Code != CodeDomainNotAllowed {
			t.Errorf("%s: %+v", name, ref)
		}
	}
}

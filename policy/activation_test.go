package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func tp(t time.Time) *time.Time { return &t }

func TestParseTreatment(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Treatment
		ok   bool
	}{
		{"free", Free, true}, {"slot", Slot, true}, {"deny", Deny, true},
		{"", "", false}, {"Free", "", false}, {"allow", "", false}, {" free", "", false},
	} {
		got, err := ParseTreatment(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTreatment(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "free, slot or deny") {
			t.Errorf("error %q does not list the choices", err)
		}
	}
}

func TestStanding(t *testing.T) {
	tests := []struct {
		name string
		lic  License
		want string // refusal code, "" for none
	}{
		{"active", License{Status: "active"}, ""},
		{"flagged still serves", License{Status: "flagged"}, ""},
		{"locked still serves", License{Status: "active", Locked: true}, ""},
		{"suspended", License{Status: "suspended"}, CodeLicenseSuspended},
		{"revoked", License{Status: "revoked"}, CodeLicenseRevoked},
		{"expired status", License{Status: "expired"}, CodeLicenseExpired},
		{"unknown status", License{Status: "weird"}, CodeLicenseSuspended},
		{"empty status", License{}, CodeLicenseSuspended},
		{"status case matters", License{Status: "Active"}, CodeLicenseSuspended},
		{"expires in the future", License{Status: "active", ExpiresAt: tp(now.Add(time.Second))}, ""},
		{"expires now", License{Status: "active", ExpiresAt: tp(now)}, CodeLicenseExpired},
		{"expired yesterday", License{Status: "active", ExpiresAt: tp(now.AddDate(0, 0, -1))}, CodeLicenseExpired},
		{"flagged and expired", License{Status: "flagged", ExpiresAt: tp(now.Add(-time.Second))}, CodeLicenseExpired},
		{"revoked wins over expiry", License{Status: "revoked", ExpiresAt: tp(now.AddDate(-1, 0, 0))}, CodeLicenseRevoked},
		{"expired, within the grace", License{Status: "active", ExpiresAt: tp(now.Add(-time.Hour)), ExpiryGrace: 2 * time.Hour}, ""},
		{"flagged, within the grace", License{Status: "flagged", ExpiresAt: tp(now.Add(-time.Hour)), ExpiryGrace: 2 * time.Hour}, ""},
		{"grace ends now", License{Status: "active", ExpiresAt: tp(now.Add(-2 * time.Hour)), ExpiryGrace: 2 * time.Hour}, CodeLicenseExpired},
		{"past the grace", License{Status: "active", ExpiresAt: tp(now.AddDate(0, 0, -8)), ExpiryGrace: 168 * time.Hour}, CodeLicenseExpired},
		{"expired status ignores the grace", License{Status: "expired", ExpiresAt: tp(now.Add(-time.Hour)), ExpiryGrace: 168 * time.Hour}, CodeLicenseExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := Standing(tt.lic, now)
			if tt.want == "" {
				if ref != nil {
					t.Fatalf("Standing = %v, want none", ref)
				}
				return
			}
			if ref == nil || ref.Code != tt.want {
				t.Fatalf("Standing = %v, want %s", ref, tt.want)
			}
			if ref.Detail == "" || ref.Error() != ref.Code+": "+ref.Detail {
				t.Fatalf("refusal %+v: no detail or bad Error()", ref)
			}
		})
	}
	past := License{Status: "active", ExpiresAt: tp(time.Date(2025, 12, 31, 23, 0, 0, 0, time.FixedZone("X", -5*3600)))}
	if ref := Standing(past, now); ref == nil || !strings.Contains(ref.Detail, "2026-01-01") {
		t.Errorf("expiry detail %v does not give the UTC date", ref)
	}
}

func TestRulesLimit(t *testing.T) {
	for _, tt := range []struct {
		rules Rules
		lic   License
		want  int
	}{
		{Rules{}, License{}, 1},
		{Rules{Activations: 3}, License{}, 3},
		{Rules{Activations: 3}, License{Limit: 5}, 5},
		{Rules{Activations: 3}, License{Limit: 1}, 1},
		{Rules{}, License{Limit: 2}, 2},
		{Rules{Activations: -1}, License{Limit: -1}, 1},
	} {
		if got := tt.rules.Limit(tt.lic); got != tt.want {
			t.Errorf("Rules%+v.Limit(%+v) = %d, want %d", tt.rules, tt.lic, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	prod := []Installation{
		{ID: "i1", Domain: "acme.com", Class: ClassProduction, Active: true},
		{ID: "i2", Domain: "old.org", Class: ClassProduction, Active: false},
		{ID: "i3", Domain: "dev.test", Class: ClassLocal, Active: true},
	}
	for _, tt := range []struct {
		domain string
		want   InstallClass
	}{
		{"acme.com", ClassProduction},
		{"staging.acme.com", ClassStaging},
		{"a.b.acme.com", ClassStaging},
		{"notacme.com", ClassProduction},
		{"acme.com.evil.net", ClassProduction},
		{"staging.old.org", ClassProduction}, // its production install is inactive
		{"x.dev.test", ClassLocal},
		{"localhost", ClassLocal},
		{"shop.localhost", ClassLocal},
		{"x.test", ClassLocal},
		{"site.local", ClassLocal},
		{"a.example", ClassLocal},
		{"a.invalid", ClassLocal},
		{"127.0.0.1", ClassLocal},
		{"127.9.9.9", ClassLocal},
		{"::1", ClassLocal},
		{"192.168.1.10", ClassProduction},
		{"example.com", ClassProduction},
		{"mytest", ClassProduction},
	} {
		if got := (Rules{}).Classify(tt.domain, prod); got != tt.want {
			t.Errorf("Classify(%q) = %s, want %s", tt.domain, got, tt.want)
		}
	}
}

func TestDecideActivation(t *testing.T) {
	freeRules := Rules{Activations: 1, LocalDomains: Free, StagingSubdomains: Free}
	active := License{Status: "active"}
	acme := Installation{ID: "ins_acme", Domain: "acme.com", Class: ClassProduction, Active: true}
	other := Installation{ID: "ins_other", Domain: "other.org", Class: ClassProduction, Active: true}
	gone := Installation{ID: "ins_gone", Domain: "gone.net", Class: ClassProduction, Active: false}
	local := Installation{ID: "ins_local", Domain: "localhost", Class: ClassLocal, Active: true}
	staging := Installation{ID: "ins_staging", Domain: "staging.acme.com", Class: ClassStaging, Active: true}

	with := func(r Rules, change func(*Rules)) Rules { change(&r); return r }
	lic := func(change func(*License)) License { l := active; change(&l); return l }

	tests := []struct {
		name    string
		rules   Rules
		lic     License
		ins     []Installation
		domain  string
		exclude string
		want    Decision
		refuse  string   // refusal code; want is ignored when set
		domains []string // Refusal.Domains
	}{
		// Production slots.
		{name: "fresh production uses a slot", rules: freeRules, lic: active, domain: "acme.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "same domain reuses without a slot", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "acme.com",
			want: Decision{Reuse: "ins_acme", Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "limit reached", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "new.com",
			refuse: CodeActivationLimit, domains: []string{"acme.com"}},
		{name: "limit reached lists only slot holders", rules: with(freeRules, func(r *Rules) { r.Activations = 2 }), lic: active,
			ins: []Installation{acme, local, gone, staging, other}, domain: "new.com",
			refuse: CodeActivationLimit, domains: []string{"acme.com", "other.org"}},
		{name: "second slot free", rules: with(freeRules, func(r *Rules) { r.Activations = 2 }), lic: active,
			ins: []Installation{acme, local, staging, gone}, domain: "new.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 2, Limit: 2}},
		{name: "deactivated installation frees its slot", rules: freeRules, lic: active, ins: []Installation{gone}, domain: "new.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "deactivated domain is activated anew", rules: freeRules, lic: active, ins: []Installation{gone}, domain: "gone.net",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "licence limit overrides the product's", rules: freeRules, lic: lic(func(l *License) { l.Limit = 3 }),
			ins: []Installation{acme, other}, domain: "new.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 3, Limit: 3}},
		{name: "lower licence limit overrides too", rules: with(freeRules, func(r *Rules) { r.Activations = 5 }), lic: lic(func(l *License) { l.Limit = 1 }),
			ins: []Installation{acme}, domain: "new.com", refuse: CodeActivationLimit, domains: []string{"acme.com"}},
		{name: "default limit is one", rules: Rules{LocalDomains: Free, StagingSubdomains: Free}, lic: active,
			ins: []Installation{acme}, domain: "new.com", refuse: CodeActivationLimit, domains: []string{"acme.com"}},

		// Local domains.
		{name: "localhost free beyond the limit", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "localhost",
			want: Decision{Class: ClassLocal, UsesSlot: false, SlotsUsed: 1, Limit: 1}},
		{name: "x.test free", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "x.test",
			want: Decision{Class: ClassLocal, UsesSlot: false, SlotsUsed: 1, Limit: 1}},
		{name: "loopback free", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "127.0.0.1",
			want: Decision{Class: ClassLocal, SlotsUsed: 1, Limit: 1}},
		{name: "empty treatment counts as free", rules: Rules{}, lic: active, ins: []Installation{acme}, domain: "localhost",
			want: Decision{Class: ClassLocal, SlotsUsed: 1, Limit: 1}},
		{name: "local with slot uses one", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Slot }), lic: active, domain: "localhost",
			want: Decision{Class: ClassLocal, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "local with slot hits the limit", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Slot }), lic: active,
			ins: []Installation{acme}, domain: "x.test", refuse: CodeActivationLimit, domains: []string{"acme.com"}},
		{name: "local slot holders are listed", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Slot }), lic: active,
			ins: []Installation{local}, domain: "acme.com", refuse: CodeActivationLimit, domains: []string{"localhost"}},
		{name: "local denied", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Deny }), lic: active, domain: "localhost",
			refuse: CodeDomainNotAllowed},
		{name: "x.test denied", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Deny }), lic: active, domain: "x.test",
			refuse: CodeDomainNotAllowed},

		// Staging subdomains.
		{name: "staging free", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "staging.acme.com",
			want: Decision{Class: ClassStaging, UsesSlot: false, SlotsUsed: 1, Limit: 1}},
		{name: "staging with slot and room", rules: with(freeRules, func(r *Rules) { r.StagingSubdomains = Slot; r.Activations = 2 }), lic: active,
			ins: []Installation{acme}, domain: "staging.acme.com",
			want: Decision{Class: ClassStaging, UsesSlot: true, SlotsUsed: 2, Limit: 2}},
		{name: "staging with slot and no room", rules: with(freeRules, func(r *Rules) { r.StagingSubdomains = Slot }), lic: active,
			ins: []Installation{acme}, domain: "staging.acme.com", refuse: CodeActivationLimit, domains: []string{"acme.com"}},
		{name: "staging denied", rules: with(freeRules, func(r *Rules) { r.StagingSubdomains = Deny }), lic: active,
			ins: []Installation{acme}, domain: "staging.acme.com", refuse: CodeDomainNotAllowed},
		{name: "subdomain of an inactive domain is production", rules: freeRules, lic: active,
			ins: []Installation{gone, acme}, domain: "staging.gone.net", refuse: CodeActivationLimit, domains: []string{"acme.com"}},
		{name: "subdomain without a parent install is production", rules: freeRules, lic: active, domain: "staging.acme.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "look-alike suffix is not staging", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "evilacme.com",
			refuse: CodeActivationLimit, domains: []string{"acme.com"}},

		// Licence types.
		{name: "developer on a public domain", rules: freeRules, lic: lic(func(l *License) { l.Type = "developer" }), domain: "acme.com",
			refuse: CodeDomainNotAllowed},
		{name: "developer on a staging subdomain", rules: freeRules, lic: lic(func(l *License) { l.Type = "developer" }),
			ins: []Installation{acme}, domain: "staging.acme.com", refuse: CodeDomainNotAllowed},
		{name: "developer on localhost", rules: freeRules, lic: lic(func(l *License) { l.Type = "developer" }), domain: "localhost",
			want: Decision{Class: ClassLocal, Limit: 1}},
		{name: "developer on local when local is denied", rules: with(freeRules, func(r *Rules) { r.LocalDomains = Deny }),
			lic: lic(func(l *License) { l.Type = "developer" }), domain: "dev.test", refuse: CodeDomainNotAllowed},
		{name: "extended licence is production", rules: freeRules, lic: lic(func(l *License) { l.Type = "extended" }), domain: "acme.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},

		// Locked licences.
		{name: "locked refuses a new domain", rules: freeRules, lic: lic(func(l *License) { l.Locked = true }), domain: "new.com",
			refuse: CodeLicenseLocked},
		{name: "locked refuses a new local domain", rules: freeRules, lic: lic(func(l *License) { l.Locked = true }), domain: "localhost",
			refuse: CodeLicenseLocked},
		// A re-activation would supersede the buyer's tokens: a locked
		// licence refuses it, and the installation keeps what it holds.
		{name: "locked refuses a re-activation", rules: freeRules, lic: lic(func(l *License) { l.Locked = true }),
			ins: []Installation{acme}, domain: "acme.com", refuse: CodeLicenseLocked},

		// Standing.
		{name: "suspended", rules: freeRules, lic: lic(func(l *License) { l.Status = "suspended" }), domain: "acme.com", refuse: CodeLicenseSuspended},
		{name: "revoked", rules: freeRules, lic: lic(func(l *License) { l.Status = "revoked" }), domain: "acme.com", refuse: CodeLicenseRevoked},
		{name: "expired", rules: freeRules, lic: lic(func(l *License) { l.Status = "expired" }), domain: "acme.com", refuse: CodeLicenseExpired},
		{name: "expires_at passed", rules: freeRules, lic: lic(func(l *License) { l.ExpiresAt = tp(now.Add(-time.Hour)) }), domain: "acme.com", refuse: CodeLicenseExpired},
		{name: "suspended refuses even the same domain", rules: freeRules, lic: lic(func(l *License) { l.Status = "suspended" }),
			ins: []Installation{acme}, domain: "acme.com", refuse: CodeLicenseSuspended},
		{name: "flagged still activates", rules: freeRules, lic: lic(func(l *License) { l.Status = "flagged" }), domain: "acme.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "expires_at ahead", rules: freeRules, lic: lic(func(l *License) { l.ExpiresAt = tp(now.Add(time.Hour)) }), domain: "acme.com",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},

		// Moves (exclude names the installation being moved).
		{name: "move frees the mover's slot", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "new.com", exclude: "ins_acme",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "move onto a domain held by another installation", rules: with(freeRules, func(r *Rules) { r.Activations = 2 }), lic: active,
			ins: []Installation{acme, other}, domain: "other.org", exclude: "ins_acme", refuse: CodeDomainInUse},
		{name: "move onto its own domain reuses", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "acme.com", exclude: "ins_acme",
			want: Decision{Reuse: "ins_acme", Class: ClassProduction, UsesSlot: true, SlotsUsed: 0, Limit: 1}},
		{name: "move onto a deactivated installation's domain", rules: freeRules, lic: active, ins: []Installation{acme, gone},
			domain: "gone.net", exclude: "ins_acme", want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "move still counts the others", rules: freeRules, lic: active, ins: []Installation{acme, other}, domain: "new.com", exclude: "ins_acme",
			refuse: CodeActivationLimit, domains: []string{"other.org"}},
		{name: "move with room", rules: with(freeRules, func(r *Rules) { r.Activations = 2 }), lic: active,
			ins: []Installation{acme, other}, domain: "new.com", exclude: "ins_acme",
			want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 2, Limit: 2}},
		{name: "move under its own old domain is production", rules: freeRules, lic: active, ins: []Installation{acme},
			domain: "shop.acme.com", exclude: "ins_acme", want: Decision{Class: ClassProduction, UsesSlot: true, SlotsUsed: 1, Limit: 1}},
		{name: "move under another active domain is staging", rules: with(freeRules, func(r *Rules) { r.Activations = 2 }), lic: active,
			ins: []Installation{acme, other}, domain: "shop.other.org", exclude: "ins_acme",
			want: Decision{Class: ClassStaging, UsesSlot: false, SlotsUsed: 1, Limit: 2}},
		{name: "move on a locked licence", rules: freeRules, lic: lic(func(l *License) { l.Locked = true }), ins: []Installation{acme},
			domain: "new.com", exclude: "ins_acme", refuse: CodeLicenseLocked},
		{name: "move to localhost", rules: freeRules, lic: active, ins: []Installation{acme}, domain: "localhost", exclude: "ins_acme",
			want: Decision{Class: ClassLocal, SlotsUsed: 0, Limit: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			insBefore := append([]Installation(nil), tt.ins...)
			got, ref := tt.rules.DecideActivation(tt.lic, tt.ins, tt.domain, tt.exclude, now)
			if !reflect.DeepEqual(tt.ins, insBefore) {
				t.Fatal("DecideActivation modified its installations")
			}
			if tt.refuse != "" {
				if ref == nil {
					t.Fatalf("decision %+v, want refusal %s", got, tt.refuse)
				}
				if ref.Code != tt.refuse {
					t.Fatalf("refusal %s (%s), want %s", ref.Code, ref.Detail, tt.refuse)
				}
				if ref.Detail == "" {
					t.Error("refusal without a detail")
				}
				if !reflect.DeepEqual(ref.Domains, tt.domains) {
					t.Fatalf("refusal domains %q, want %q", ref.Domains, tt.domains)
				}
				if got != (Decision{}) {
					t.Fatalf("refusal came with a decision %+v", got)
				}
				return
			}
			if ref != nil {
				t.Fatalf("refused %s (%s), want %+v", ref.Code, ref.Detail, tt.want)
			}
			if got != tt.want {
				t.Fatalf("decision %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestActivationLimitDetailNamesLimit(t *testing.T) {
	r := Rules{Activations: 2}
	ins := []Installation{
		{ID: "a", Domain: "a.com", Class: ClassProduction, Active: true},
		{ID: "b", Domain: "b.com", Class: ClassProduction, Active: true},
	}
	_, ref := r.DecideActivation(License{Status: "active"}, ins, "c.com", "", now)
	if ref == nil || ref.Code != CodeActivationLimit || !strings.Contains(ref.Detail, "All 2 activation") {
		t.Fatalf("refusal %+v", ref)
	}
}

func TestOrphanedStagingHoldsASlot(t *testing.T) {
	r := Rules{Activations: 1, StagingSubdomains: Free}
	ins := []Installation{
		{ID: "p", Domain: "acme.com", Class: ClassProduction, Active: false}, // deactivated parent
		{ID: "s", Domain: "staging.acme.com", Class: ClassStaging, Active: true},
	}
	_, ref := r.DecideActivation(License{Status: "active"}, ins, "evil.com", "", now)
	if ref == nil || ref.Code != CodeActivationLimit || !reflect.DeepEqual(ref.Domains, []string{"staging.acme.com"}) {
		t.Fatalf("a staging copy without its parent left a free slot: %+v", ref)
	}
}

func TestSlotDomains(t *testing.T) {
	ins := []Installation{
		{ID: "a", Domain: "a.com", Class: ClassProduction, Active: true},
		{ID: "l", Domain: "localhost", Class: ClassLocal, Active: true},
		{ID: "s", Domain: "s.a.com", Class: ClassStaging, Active: true},
		{ID: "d", Domain: "d.com", Class: ClassProduction, Active: false},
	}
	for _, tt := range []struct {
		rules   Rules
		exclude string
		want    []string
	}{
		{Rules{LocalDomains: Free, StagingSubdomains: Free}, "", []string{"a.com"}},
		{Rules{LocalDomains: Slot, StagingSubdomains: Free}, "", []string{"a.com", "localhost"}},
		{Rules{LocalDomains: Slot, StagingSubdomains: Slot}, "", []string{"a.com", "localhost", "s.a.com"}},
		{Rules{LocalDomains: Slot, StagingSubdomains: Slot}, "a", []string{"localhost", "s.a.com"}},
		// With its parent left out (moved away), the staging copy is a
		// production site again and holds a slot whatever the treatment.
		{Rules{LocalDomains: Deny, StagingSubdomains: Deny}, "a", []string{"s.a.com"}},
		{Rules{LocalDomains: Free, StagingSubdomains: Free}, "a", []string{"s.a.com"}},
	} {
		if got := tt.rules.SlotDomains(ins, tt.exclude); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v SlotDomains(exclude %q) = %q, want %q", tt.rules, tt.exclude, got, tt.want)
		}
	}
}

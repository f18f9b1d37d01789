package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/store"
)

func TestTerms(t *testing.T) {
	ins := func(id, domain, status string) store.Installation {
		return store.Installation{ID: id, Domain: domain, Status: status}
	}
	tests := []struct {
		name string
		st   *store.LicenseState
		want []string
	}{
		{"no licence", &store.LicenseState{}, nil},
		{"nothing to index", &store.LicenseState{License: &store.License{Source: "envato"}}, nil},
		{"refs, e-mail, buyer, domains", &store.LicenseState{
			License: &store.License{Source: "envato", LicensedTo: " MixedCase_Buyer ", EmailHash: "h1",
				Refs: []string{store.RefTerm("envato", "order", "7")}},
			Installations: []store.Installation{
				ins("i1", "acme.com", store.InstallationActive),
				ins("i2", "old.example", store.InstallationDeactivated),
				ins("i3", "acme.com", store.InstallationCloned), // a repeat is one term
				ins("i4", "", store.InstallationActive),
			},
		}, []string{"buyer:envato:mixedcase_buyer", "domain:acme.com", "domain:old.example", "email:h1", "queue:cloned", "ref:envato:order:7"}},
		{"every review queue", &store.LicenseState{
			License: &store.License{Status: store.LicenseFlagged, Locked: true},
			Installations: []store.Installation{
				ins("i1", "", store.InstallationCloned), ins("i2", "", store.InstallationCloned), // one term
			},
		}, []string{"queue:cloned", "queue:flagged", "queue:locked"}},
		{"no queue: active, unlocked, nothing cloned", &store.LicenseState{
			License:       &store.License{Status: store.LicenseSuspended},
			Installations: []store.Installation{ins("i1", "", store.InstallationDeactivated)},
		}, nil},
		{"an e-mail address as the name is not a term", &store.LicenseState{
			License: &store.License{Source: "gumroad", LicensedTo: "Buyer@Example.com"},
		}, nil},
		{"a name with a control character is not a term", &store.LicenseState{
			License: &store.License{Source: "keygen", LicensedTo: "a\x00b"},
		}, nil},
		{"an overlong name is not a term", &store.LicenseState{
			License: &store.License{Source: "keygen", LicensedTo: strings.Repeat("n", 101)},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.st.Terms(); !slices.Equal(got, tt.want) {
				t.Errorf("Terms = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuyerTermFoldsCase(t *testing.T) {
	if a, b := store.BuyerTerm("envato", "JohnDoe"), store.BuyerTerm("envato", " johndoe"); a != b {
		t.Errorf("BuyerTerm differs by case or space: %q, %q", a, b)
	}
	if a, b := store.BuyerTerm("envato", "x"), store.BuyerTerm("gumroad", "x"); a == b {
		t.Error("BuyerTerm of two sources is one term")
	}
}

// TestDomainTermsBounded: a state holding more installations than
// MaxDomainTerms is indexed by that many domains, its active ones first.
func TestDomainTermsBounded(t *testing.T) {
	st := &store.LicenseState{License: &store.License{}}
	for i := range store.MaxDomainTerms + 10 {
		st.Installations = append(st.Installations, store.Installation{ID: fmt.Sprint(i), Domain: fmt.Sprintf("d%03d.example", i), Status: store.InstallationDeactivated})
	}
	st.Installations = append(st.Installations, store.Installation{ID: "active", Domain: "zz-active.example", Status: store.InstallationActive})
	got := st.Terms()
	if len(got) != store.MaxDomainTerms || !slices.Contains(got, store.DomainTerm("zz-active.example")) {
		t.Errorf("%d terms (active one in: %t), want %d with the active one", len(got), slices.Contains(got, store.DomainTerm("zz-active.example")), store.MaxDomainTerms)
	}
}

func TestQueueTerm(t *testing.T) {
	for _, q := range store.Queues {
		if got, want := store.QueueTerm(q), "queue:"+q; got != want {
			t.Errorf("QueueTerm(%s) = %q, want %q", q, got, want)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for limit, want := range map[int]int{-1: 0, 0: 0, 1: 1, 500: 500, 501: 500, 1 << 40: 500} {
		if got := store.PageLimit(limit); got != want {
			t.Errorf("PageLimit(%d) = %d, want %d", limit, got, want)
		}
	}
}

package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Lookup terms find licences by something other than their id, through
// an index each backend keeps in the same write as the licence: a store
// webhook names an order, a sale or the vendor's licence id (SPEC section
// 7), never our licence id; the author console searches by an
// installation's domain or the buyer's name (SPEC section 13). A term is
// no secret: a vendor's id of a purchase, a domain, a marketplace
// username, never a key, a token or an e-mail address in the clear.

// MaxLookup bounds how many licences one term may list: a term names one
// purchase, so more is a bug or an attack, and never a reason to read on.
const MaxLookup = 100

// RefTerm is the lookup term of a vendor's id of a purchase: kind is one
// of upstreams' ID* kinds (order, sale, subscription, license). The id
// comes last, so an id holding the separator is still one term.
func RefTerm(source, kind, id string) string { return "ref:" + source + ":" + kind + ":" + id }

// EmailTerm is the lookup term of a buyer's e-mail address, given as its
// keyed hash (License.EmailHash).
func EmailTerm(hash string) string { return "email:" + hash }

// DomainTerm is the lookup term of an installation's domain, as stored
// (Installation.Domain, which the gateway normalised): the author
// console's search by domain.
func DomainTerm(domain string) string { return "domain:" + domain }

// BuyerTerm is the lookup term of the buyer's name a source reports
// (License.LicensedTo: an Envato username, say), lower-cased and trimmed
// so a search need not know how the marketplace spells it. A name that
// is an e-mail address is never indexed by it (see buyerName): that
// buyer is found by EmailTerm, which holds a keyed hash.
func BuyerTerm(source, name string) string {
	return "buyer:" + source + ":" + strings.ToLower(strings.TrimSpace(name))
}

// maxBuyerName bounds the names BuyerTerm indexes: a marketplace's
// username is short, and a longer value is no name worth a key.
const maxBuyerName = 100

// buyerName reports whether LicensedTo is a name to index. Several
// sources report the buyer's e-mail address there when they know no
// name (Gumroad, Easy Digital Downloads, Lemon Squeezy): an address in
// the clear never goes into a term, so a value holding an @ is left out,
// as is an empty or overlong one, or one with control characters (a
// term is printable: the embedded index ends it with a NUL).
func buyerName(name string) bool {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxBuyerName || strings.Contains(name, "@") {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// MaxDomainTerms bounds the domain terms of one licence. A licence's
// installations are bounded already (its slots, and policy.MaxEnded
// ended ones), so this only guards the index against a state that is
// not: the active installations' domains come first.
const MaxDomainTerms = MaxLookup

// domainTerms lists the domains of st's installations as terms, active
// or not: an installation kept in the state (deactivated, released,
// cloned) still finds its licence, one the state no longer holds (pruned,
// or moved to another domain) does not.
func (st *LicenseState) domainTerms() []string {
	var terms []string
	seen := map[string]bool{}
	add := func(in *Installation) {
		if in.Domain != "" && !seen[in.Domain] && len(terms) < MaxDomainTerms {
			seen[in.Domain] = true
			terms = append(terms, DomainTerm(in.Domain))
		}
	}
	for _, active := range []bool{true, false} {
		for i := range st.Installations {
			if in := &st.Installations[i]; in.Active() == active {
				add(in)
			}
		}
	}
	return terms
}

// Terms lists the lookup terms st is indexed by, sorted, without
// repeats: its licence's Refs, its buyer's e-mail (hashed) and name, its
// installations' domains, and the review queues it is in (queue.go).
// Nil when st holds no licence, or none of these.
func (st *LicenseState) Terms() []string {
	if st == nil || st.License == nil {
		return nil
	}
	lic := st.License
	terms := slices.Clone(lic.Refs)
	if lic.EmailHash != "" {
		terms = append(terms, EmailTerm(lic.EmailHash))
	}
	if buyerName(lic.LicensedTo) {
		terms = append(terms, BuyerTerm(lic.Source, lic.LicensedTo))
	}
	terms = append(terms, st.domainTerms()...)
	terms = append(terms, st.queueTerms()...)
	if len(terms) == 0 {
		return nil
	}
	slices.Sort(terms)
	return slices.Compact(terms)
}

// TermChanges compares the terms a licence was indexed by (old) with those
// it is to be (next), both as Terms returns them: gone are to be removed
// from the index, added to be put in it.
func TermChanges(old, next []string) (gone, added []string) {
	i, j := 0, 0
	for i < len(old) || j < len(next) {
		switch {
		case j == len(next) || i < len(old) && old[i] < next[j]:
			gone = append(gone, old[i])
			i++
		case i == len(old) || next[j] < old[i]:
			added = append(added, next[j])
			j++
		default:
			i++
			j++
		}
	}
	return gone, added
}

// Ask is a licence queued for a check now (Scheduler.AskCheck).
type Ask struct {
	LicenseID string
	At        time.Time // the latest ask
}

// Finder is how licences are found by a lookup term.
type Finder interface {
	// Lookup returns the ids of up to MaxLookup licences indexed by term,
	// in id order; none is an empty list, not an error.
	Lookup(ctx context.Context, term string) ([]string, error)
}

// SortAsks orders asks oldest first, then by licence id.
func SortAsks(asks []Ask) {
	slices.SortFunc(asks, func(a, b Ask) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.LicenseID, b.LicenseID)
	})
}

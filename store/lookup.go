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
// 7), never our licence id. A term is no secret: a vendor's id of a
// purchase, never a key or an e-mail address in the clear.

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

// Terms lists the lookup terms st is indexed by, sorted, without
// repeats: its licence's Refs and its buyer's e-mail. Nil when st holds
// no licence.
func (st *LicenseState) Terms() []string {
	if st == nil || st.License == nil {
		return nil
	}
	lic := st.License
	if len(lic.Refs) == 0 && lic.EmailHash == "" {
		return nil
	}
	terms := slices.Clone(lic.Refs)
	if lic.EmailHash != "" {
		terms = append(terms, EmailTerm(lic.EmailHash))
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

package store

import (
	"cmp"
	"slices"
)

// Installed versions (SPEC section 13): the gate records the version an
// installation reports (X-Product-Version) with its last seen
// (Seen.Version), and the store keeps, per product, how many active
// installations are on each version: exact, without scanning, because
// every write that changes what an installation counts for (its version,
// its status, its being in the state at all) adjusts the counts in the
// same atomic write (UpdateLicense and RecordSeen, both backends). So a
// deactivated, released or cloned installation stops counting with the
// write that ends it, a reactivated one counts again, and one the state
// forgets (pruned) is taken off. An installation that never reported a
// version is not counted.
//
// The counts are bounded: at most MaxVersions versions of a product have
// counts of their own, further ones count under VersionOther, and a
// version whose count falls to zero is dropped, making room. Each
// installation records where it is counted (Installation.VersionCountedAs),
// so taking it off always takes it off the count it was added to, and
// the counts stay exact whatever was folded.

// Bounds of the version counts.
const (
	MaxVersions = 50
	// VersionOther counts the installations on versions past MaxVersions.
	VersionOther = "other"
	// MaxVersionLen bounds a version (ValidVersion).
	MaxVersionLen = 32
)

// ValidVersion reports whether v is a version the store counts: 1 to 32
// of [0-9A-Za-z.+_-] (semantic versions with pre-release and build
// parts fit). Anything else is no version.
func ValidVersion(v string) bool {
	if v == "" || len(v) > MaxVersionLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '+' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// VersionDelta changes one product's count of one version (or of
// VersionOther).
type VersionDelta struct {
	Product string
	Version string
	N       int64
}

// countedVersion is the version an installation counts for, or "" for
// none: active, on a product, with a valid version.
func countedVersion(in *Installation) string {
	if !in.Active() || in.Product == "" || !ValidVersion(in.Version) {
		return ""
	}
	return in.Version
}

// CountVersions settles a write's version counts: old is the state as
// stored (its installations' VersionCountedAs say where each is
// counted), next the state to write. It sets VersionCountedAs on every
// installation of next and returns the deltas to apply with the write,
// sorted. tracked reads the versions a product's counts hold now; it is
// called (once per product) only when an installation is to be counted
// anew, and a backend reads it within the write's transaction.
func CountVersions(old, next []Installation, tracked func(product string) (map[string]bool, error)) ([]VersionDelta, error) {
	type counted struct{ product, version, as string }
	before := make(map[string]counted, len(old))
	for i := range old {
		if in := &old[i]; in.VersionCountedAs != "" {
			before[in.ID] = counted{in.Product, in.Version, in.VersionCountedAs}
		}
	}
	d := versionDeltas{}
	tables := map[string]map[string]bool{}
	for i := range next {
		in := &next[i]
		v := countedVersion(in)
		prev, had := before[in.ID]
		delete(before, in.ID)
		if had && v != "" && prev.product == in.Product && prev.version == v {
			in.VersionCountedAs = prev.as // unchanged: counted where it was
			continue
		}
		in.VersionCountedAs = ""
		if had {
			d.add(prev.product, prev.as, -1)
		}
		if v == "" {
			continue
		}
		table, err := versionTable(tables, in.Product, tracked)
		if err != nil {
			return nil, err
		}
		in.VersionCountedAs = place(table, v)
		d.add(in.Product, in.VersionCountedAs, 1)
	}
	for _, prev := range before { // left out of the state: forgotten
		d.add(prev.product, prev.as, -1)
	}
	return d.list(), nil
}

// versionTable returns product's table, read once per write.
func versionTable(tables map[string]map[string]bool, product string, tracked func(string) (map[string]bool, error)) (map[string]bool, error) {
	if t, ok := tables[product]; ok {
		return t, nil
	}
	t, err := tracked(product)
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = map[string]bool{}
	}
	tables[product] = t
	return t, nil
}

// place says where a newly counted installation on v goes: v's own
// count when the product has one or room for one, else VersionOther.
// The table learns the count it adds.
func place(table map[string]bool, v string) string {
	if table[v] {
		return v
	}
	own := len(table)
	if table[VersionOther] {
		own--
	}
	if v == VersionOther || own >= MaxVersions {
		v = VersionOther
	}
	table[v] = true
	return v
}

// versionDeltas sums deltas by product and version.
type versionDeltas map[[2]string]int64

func (d versionDeltas) add(product, version string, n int64) { d[[2]string{product, version}] += n }

// list returns the non-zero deltas, by product and version.
func (d versionDeltas) list() []VersionDelta {
	var out []VersionDelta
	for k, n := range d {
		if n != 0 {
			out = append(out, VersionDelta{Product: k[0], Version: k[1], N: n})
		}
	}
	slices.SortFunc(out, func(a, b VersionDelta) int {
		return cmp.Or(cmp.Compare(a.Product, b.Product), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// VersionsByProduct groups deltas by product, in order: one write per
// product's counts.
func VersionsByProduct(deltas []VersionDelta) (order []string, by map[string][]VersionDelta) {
	by = map[string][]VersionDelta{}
	for _, d := range deltas {
		if _, ok := by[d.Product]; !ok {
			order = append(order, d.Product)
		}
		by[d.Product] = append(by[d.Product], d)
	}
	return order, by
}

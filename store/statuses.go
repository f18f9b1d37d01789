package store

import (
	"context"
	"slices"
	"strings"
)

// Status counts (SPEC section 13, the console's overview): how many
// licences are in each status, how many installations, how many licences
// the leak lock holds. They are read on every overview, at any number of
// licences, so they are kept, not counted: every write of a licence
// adjusts them in the same atomic write (UpdateLicense, both backends; on
// a Redis Cluster right after the transaction, as the version counts).
//
// A licence stored before the counts existed is in none of them; its
// next write adds it. So that such a write does not also take off what
// was never added, the store marks a licence it has counted
// (License.Counted): a write takes off the stored state's share only
// when the state was counted, adds the new state's, and marks it. The
// counts are exact for the licences written since, and the rest join
// with their next write (an activation, a recheck, an admin action).

// Names of the kept counts: one per licence status, one per installation
// status, and the locked licences.
const (
	statusLicensePrefix      = "license:"
	statusInstallationPrefix = "installation:"
	statusLocked             = "locked"
	// StatusOther counts what has a status that is no status name
	// (countedStatus).
	StatusOther = "other"
)

// maxStatusLen bounds a counted status name.
const maxStatusLen = 32

// countedStatus is the name status is counted under: itself when it is
// 1 to 32 of [a-z_] (every status the gateway writes), else StatusOther,
// so a bug writing odd statuses cannot grow the counts without bound.
// The rule never changes, so a share taken off is always the one added.
func countedStatus(status string) string {
	if status == "" || len(status) > maxStatusLen {
		return StatusOther
	}
	for i := 0; i < len(status); i++ {
		if c := status[i]; !('a' <= c && c <= 'z' || c == '_') {
			return StatusOther
		}
	}
	return status
}

// StatusShare is what one licence's state adds to the status counts, by
// count name.
type StatusShare map[string]int64

// share returns st's share of the counts (nil without a licence).
func (st *LicenseState) share() StatusShare {
	if st == nil || st.License == nil {
		return nil
	}
	s := StatusShare{statusLicensePrefix + countedStatus(st.License.Status): 1}
	if st.License.Locked {
		s[statusLocked] = 1
	}
	for i := range st.Installations {
		s[statusInstallationPrefix+countedStatus(st.Installations[i].Status)]++
	}
	return s
}

// CountedShare is the share the state as stored is counted with: nil
// when it is not counted (no licence, or stored before the counts). A
// backend takes it before UpdateLicense's fn runs, as fn may change the
// state it is given.
func CountedShare(stored *LicenseState) StatusShare {
	if stored == nil || stored.License == nil || !stored.License.Counted {
		return nil
	}
	return stored.share()
}

// StatusDelta changes one kept count (its name, as StatusCounter's
// backends keep it) by N.
type StatusDelta struct {
	Name string
	N    int64
}

// CountStatuses settles a write's status counts: before is the stored
// state's CountedShare, next the state to write. It marks next's licence
// counted (whatever the caller set) and returns the non-zero deltas to
// apply with the write, by name.
func CountStatuses(before StatusShare, next *LicenseState) []StatusDelta {
	sum := map[string]int64{}
	for name, n := range before {
		sum[name] -= n
	}
	for name, n := range next.share() {
		sum[name] += n
	}
	if next != nil && next.License != nil {
		next.License.Counted = true
	}
	out := make([]StatusDelta, 0, len(sum))
	for name, n := range sum {
		if n != 0 {
			out = append(out, StatusDelta{Name: name, N: n})
		}
	}
	slices.SortFunc(out, func(a, b StatusDelta) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SplitStatusCounts splits the kept counts, by name, into the answer of
// StatusCounter.StatusCounts. Counts that are not positive are left out
// (a Redis Cluster may briefly hold one below zero, see the redis
// store's status counts).
func SplitStatusCounts(kept map[string]int64) (licenses, installations map[string]int64, locked int64) {
	licenses, installations = map[string]int64{}, map[string]int64{}
	for name, n := range kept {
		if n <= 0 {
			continue
		}
		switch {
		case name == statusLocked:
			locked = n
		case strings.HasPrefix(name, statusLicensePrefix):
			licenses[name[len(statusLicensePrefix):]] = n
		case strings.HasPrefix(name, statusInstallationPrefix):
			installations[name[len(statusInstallationPrefix):]] = n
		}
	}
	return licenses, installations, locked
}

// StatusCounter reads the status counts. Both stores implement it;
// callers reach it with a type assertion on the Store.
type StatusCounter interface {
	// StatusCounts returns how many licences are in each status, how
	// many installations the licences' records hold in each status
	// (ended ones until they are pruned), and how many licences are
	// locked: exact for every licence written since the counts existed
	// (see above), read in O(1). A status nobody is in is left out;
	// none is an empty map.
	StatusCounts(ctx context.Context) (licenses, installations map[string]int64, locked int64, err error)
}

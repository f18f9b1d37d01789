package store

import "context"

// The review queue (SPEC section 13): the licences the author must look
// at. The console lists and counts them at any number of licences, so
// they cannot be found by reading every licence: each queue is a lookup
// term (QueueTerm) the licence's own write indexes it by, as its other
// terms (Terms), so a licence enters a queue in the write that flags,
// locks or marks it, and leaves it in the write that clears it (on a
// Redis Cluster, whose term keys are in other slots than the licence,
// right after its transaction and before UpdateLicense returns). A
// licence stored before the queues existed joins them with its next
// write: both stores re-assert every term on each write.

// The review queues.
const (
	// QueueFlagged holds the licences whose status is LicenseFlagged: a
	// recheck or a store said the purchase may be gone, and manual mode
	// waits for the author to suspend or reinstate it.
	QueueFlagged = "flagged"
	// QueueLocked holds the licences the leak lock holds (License.Locked).
	QueueLocked = "locked"
	// QueueCloned holds the licences with an installation marked cloned
	// (InstallationCloned): its refresh token was reused. The licence
	// leaves the queue when that installation is active again or pruned
	// from its record.
	QueueCloned = "cloned"
)

// Queues lists the review queues, in the order the console shows them.
var Queues = []string{QueueFlagged, QueueLocked, QueueCloned}

// QueueTerm is the lookup term of a review queue (QueueFlagged, ...).
func QueueTerm(name string) string { return "queue:" + name }

// queueTerms lists the review queues st belongs in, as terms.
func (st *LicenseState) queueTerms() []string {
	var terms []string
	if st.License.Status == LicenseFlagged {
		terms = append(terms, QueueTerm(QueueFlagged))
	}
	if st.License.Locked {
		terms = append(terms, QueueTerm(QueueLocked))
	}
	for i := range st.Installations {
		if st.Installations[i].Status == InstallationCloned {
			terms = append(terms, QueueTerm(QueueCloned))
			break
		}
	}
	return terms
}

// MaxPage bounds one page of LookupAfter: a console page of a queue.
const MaxPage = 500

// PageLimit is the number of ids a page asked for limit may list: limit,
// at most MaxPage; none for a limit below one.
func PageLimit(limit int) int { return max(0, min(limit, MaxPage)) }

// TermPager pages through a term's licences past MaxLookup and counts
// them: a review queue may hold far more licences than a search term
// (Finder), and the console shows its size and pages through it. Both
// stores implement it; callers reach it with a type assertion on the
// Store.
type TermPager interface {
	// LookupAfter returns the ids of the licences indexed by term that
	// sort after after ("" for the first page), in id order, at most
	// PageLimit(limit) of them; none is an empty list. It reads only the
	// page: the next one starts after its last id.
	LookupAfter(ctx context.Context, term, after string, limit int) ([]string, error)
	// CountTerm returns how many licences term indexes, exactly, without
	// reading any licence.
	CountTerm(ctx context.Context, term string) (int64, error)
}

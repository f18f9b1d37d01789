package store

import (
	"time"
)

// InstallationReleased is the status of an installation release_idle
// freed the slot of: unused too long, its tokens are refused.
const InstallationReleased = "released"

// Its audit action is AuditInstallationReleased (ledger.go).

// Seen is one installation's last use, as the gate saw it: what
// Store.RecordSeen writes.
type Seen struct {
	LicenseID      string
	InstallationID string
	At             time.Time
	// Version is the product version the installation reported
	// (ValidVersion), or empty when it reported none: the stored one
	// stays.
	Version string
}

// ApplySeen raises the LastSeenAt of st's installations named in seen
// (all of one licence), records the version each reported when its use
// is not older than the last one recorded, and reports whether any
// changed.
func ApplySeen(st *LicenseState, seen []Seen) bool {
	changed := false
	for _, s := range seen {
		in := st.Installation(s.InstallationID)
		if in == nil {
			continue
		}
		if ValidVersion(s.Version) && s.Version != in.Version && !s.At.Before(in.LastSeenAt) {
			in.Version = s.Version
			changed = true
		}
		if s.At.After(in.LastSeenAt) {
			in.LastSeenAt = s.At
			changed = true
		}
	}
	return changed
}

// SeenByLicense groups a batch by licence, in first-seen order.
func SeenByLicense(seen []Seen) (order []string, by map[string][]Seen) {
	by = map[string][]Seen{}
	for _, s := range seen {
		if _, ok := by[s.LicenseID]; !ok {
			order = append(order, s.LicenseID)
		}
		by[s.LicenseID] = append(by[s.LicenseID], s)
	}
	return order, by
}

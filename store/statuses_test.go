package store_test

import (
	"reflect"
	"testing"

	"github.com/licensegate/licensegate/store"
)

func statusState(status string, locked, counted bool, installations ...string) *store.LicenseState {
	st := &store.LicenseState{License: &store.License{Status: status, Locked: locked, Counted: counted}}
	for _, s := range installations {
		st.Installations = append(st.Installations, store.Installation{Status: s})
	}
	return st
}

// TestCountStatuses: a write's deltas take off the stored state's share
// only when it was counted, add the new state's, and mark it counted.
func TestCountStatuses(t *testing.T) {
	d := func(name string, n int64) store.StatusDelta { return store.StatusDelta{Name: name, N: n} }
	tests := []struct {
		name   string
		stored *store.LicenseState
		next   *store.LicenseState
		want   []store.StatusDelta
	}{
		{"a new licence", &store.LicenseState{},
			statusState(store.LicenseActive, false, false, store.InstallationActive, store.InstallationActive),
			[]store.StatusDelta{d("installation:active", 2), d("license:active", 1)}},
		{"stored before the counts: added, nothing taken off",
			statusState(store.LicenseActive, true, false, store.InstallationActive),
			statusState(store.LicenseFlagged, true, false, store.InstallationActive),
			[]store.StatusDelta{d("installation:active", 1), d("license:flagged", 1), d("locked", 1)}},
		{"counted: moved",
			statusState(store.LicenseActive, true, true, store.InstallationActive, store.InstallationActive),
			statusState(store.LicenseSuspended, false, true, store.InstallationActive, store.InstallationCloned),
			[]store.StatusDelta{d("installation:active", -1), d("installation:cloned", 1), d("license:active", -1), d("license:suspended", 1), d("locked", -1)}},
		{"counted: unchanged, whatever the caller says it is",
			statusState(store.LicenseActive, false, true, store.InstallationActive),
			statusState(store.LicenseActive, false, false, store.InstallationActive),
			[]store.StatusDelta{}},
		{"installations pruned",
			statusState(store.LicenseActive, false, true, store.InstallationDeactivated, store.InstallationActive),
			statusState(store.LicenseActive, false, true, store.InstallationActive),
			[]store.StatusDelta{d("installation:deactivated", -1)}},
		{"odd statuses count as other",
			&store.LicenseState{},
			statusState("Weird Status", false, false, "", "x.y"),
			[]store.StatusDelta{d("installation:other", 2), d("license:other", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := store.CountStatuses(store.CountedShare(tt.stored), tt.next)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("deltas %+v, want %+v", got, tt.want)
			}
			if !tt.next.License.Counted {
				t.Error("the state to write is not marked counted")
			}
		})
	}
}

func TestSplitStatusCounts(t *testing.T) {
	lic, ins, locked := store.SplitStatusCounts(map[string]int64{
		"license:active": 3, "license:flagged": 0, "license:revoked": -1,
		"installation:active": 5, "installation:cloned": 1, "locked": 2, "unknown": 9,
	})
	if want := map[string]int64{"active": 3}; !reflect.DeepEqual(lic, want) {
		t.Errorf("licences %v, want %v", lic, want)
	}
	if want := map[string]int64{"active": 5, "cloned": 1}; !reflect.DeepEqual(ins, want) {
		t.Errorf("installations %v, want %v", ins, want)
	}
	if locked != 2 {
		t.Errorf("locked %d, want 2", locked)
	}
	lic, ins, locked = store.SplitStatusCounts(nil)
	if lic == nil || ins == nil || len(lic)+len(ins) != 0 || locked != 0 {
		t.Errorf("no counts = %#v, %#v, %d; want empty maps", lic, ins, locked)
	}
}

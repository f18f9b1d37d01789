package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func init() {
	tests = append(tests, test{"RecordSeen", testRecordSeen})
}

// RecordSeen raises last-seen times in one batch across licences, never
// lowers them, skips what is gone, and leaves the version and the change
// feed alone.
func testRecordSeen(t *testing.T, h *harness) {
	s := h.open(t)
	rec, ok := s.(store.SeenRecorder)
	if !ok {
		t.Skip("the store records no last-seen batches")
	}
	ctx := context.Background()
	a := put(t, s, sampleState())
	b := license("lic_2")
	b.Installations = []store.Installation{{ID: "ins_b", LicenseID: "lic_2", Status: store.InstallationActive, CreatedAt: t0}}
	put(t, s, b)
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := s.Subscribe(sub)
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	err = rec.RecordSeen(ctx, []store.Seen{
		{LicenseID: "lic_1", InstallationID: "ins_1", At: later},
		{LicenseID: "lic_1", InstallationID: "ins_2", At: t0.Add(-time.Hour)}, // older than stored (zero): raised
		{LicenseID: "lic_2", InstallationID: "ins_b", At: later},
		{LicenseID: "lic_2", InstallationID: "ins_gone", At: later},
		{LicenseID: "lic_gone", InstallationID: "ins_x", At: later},
	})
	if err != nil {
		t.Fatalf("RecordSeen: %v", err)
	}
	if err := rec.RecordSeen(ctx, []store.Seen{{LicenseID: "lic_1", InstallationID: "ins_1", At: t0}}); err != nil {
		t.Fatalf("RecordSeen (older): %v", err)
	}
	got, err := s.LicenseState(ctx, "lic_1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Installation("ins_1").LastSeenAt.Equal(later) || !got.Installation("ins_2").LastSeenAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("last seen %v, %v", got.Installation("ins_1").LastSeenAt, got.Installation("ins_2").LastSeenAt)
	}
	if got.License.Version != a.License.Version {
		t.Errorf("version %d after RecordSeen, want %d", got.License.Version, a.License.Version)
	}
	if got2, _ := s.LicenseState(ctx, "lic_2"); !got2.Installation("ins_b").LastSeenAt.Equal(later) || len(got2.Installations) != 1 {
		t.Errorf("lic_2 after RecordSeen: %+v", got2.Installations)
	}
	if gone, _ := s.LicenseState(ctx, "lic_gone"); gone.License != nil {
		t.Error("RecordSeen created a licence")
	}
	select {
	case ch := <-changes:
		if !ch.Resync {
			t.Errorf("RecordSeen published %+v", ch)
		}
	default:
	}
	// A later full write keeps what RecordSeen wrote.
	put2, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) {
		st.License.Locked = false
		return st, nil
	})
	if err != nil || !put2.Installation("ins_1").LastSeenAt.Equal(later) {
		t.Fatalf("UpdateLicense after RecordSeen: %v, %+v", err, put2)
	}
}

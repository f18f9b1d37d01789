package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// The gate's batches: last-seen times and quota counters.

// RecordSeen raises last-seen times in one batch across licences, never
// lowers them, skips what is gone, and leaves the version and the change
// feed alone.
func testRecordSeen(t *testing.T, h *harness) {
	s := h.open(t)
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
	err = s.RecordSeen(ctx, []store.Seen{
		{LicenseID: "lic_1", InstallationID: "ins_1", At: later},
		{LicenseID: "lic_1", InstallationID: "ins_2", At: t0.Add(-time.Hour)}, // older than stored (zero): raised
		{LicenseID: "lic_2", InstallationID: "ins_b", At: later},
		{LicenseID: "lic_2", InstallationID: "ins_gone", At: later},
		{LicenseID: "lic_gone", InstallationID: "ins_x", At: later},
	})
	if err != nil {
		t.Fatalf("RecordSeen: %v", err)
	}
	if err := s.RecordSeen(ctx, []store.Seen{{LicenseID: "lic_1", InstallationID: "ins_1", At: t0}}); err != nil {
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

// AddQuota adds per installation and window, and answers the totals.
func testAddQuota(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	w := time.Now().UTC().Truncate(time.Minute)
	d := func(ins string, win time.Time, n int64) store.QuotaDelta {
		return store.QuotaDelta{LicenseID: "lic_1", InstallationID: ins, Window: win, Period: time.Minute, N: n}
	}
	got, err := s.AddQuota(ctx, []store.QuotaDelta{d("ins_a", w, 3), d("ins_b", w, 1)})
	if err != nil || !slices.Equal(got, []int64{3, 1}) {
		t.Fatalf("AddQuota: %v, %v", got, err)
	}
	got, err = s.AddQuota(ctx, []store.QuotaDelta{d("ins_a", w, 2), d("ins_b", w, 0), d("ins_a", w.Add(time.Minute), 1)})
	if err != nil || !slices.Equal(got, []int64{5, 1, 1}) {
		t.Fatalf("AddQuota again: %v, %v", got, err)
	}
}

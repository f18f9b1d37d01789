package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func init() {
	tests = append(tests, test{"AddQuota", testAddQuota})
}

// AddQuota adds per installation and window, and answers the totals.
func testAddQuota(t *testing.T, h *harness) {
	s := h.open(t)
	qc, ok := s.(store.QuotaCounter)
	if !ok {
		t.Skip("the store keeps no quota counters")
	}
	ctx := context.Background()
	w := time.Now().UTC().Truncate(time.Minute)
	d := func(ins string, win time.Time, n int64) store.QuotaDelta {
		return store.QuotaDelta{LicenseID: "lic_1", InstallationID: ins, Window: win, Period: time.Minute, N: n}
	}
	got, err := qc.AddQuota(ctx, []store.QuotaDelta{d("ins_a", w, 3), d("ins_b", w, 1)})
	if err != nil || !slices.Equal(got, []int64{3, 1}) {
		t.Fatalf("AddQuota: %v, %v", got, err)
	}
	got, err = qc.AddQuota(ctx, []store.QuotaDelta{d("ins_a", w, 2), d("ins_b", w, 0), d("ins_a", w.Add(time.Minute), 1)})
	if err != nil || !slices.Equal(got, []int64{5, 1, 1}) {
		t.Fatalf("AddQuota again: %v, %v", got, err)
	}
}

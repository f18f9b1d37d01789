package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func testListLicenses(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	var want []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("lic_list_%02d", i)
		want = append(want, id)
		put(t, s, license(id))
	}
	update(t, s, "lic_list_03", func(st *store.LicenseState) { st.License.Status = store.LicenseSuspended })
	var got []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		page, err := s.ListLicenses(ctx, after, 3)
		if err != nil {
			t.Fatalf("ListLicenses: %v", err)
		}
		for _, st := range page {
			got = append(got, st.License.ID)
			if st.License.ID == "lic_list_03" && st.License.Status != store.LicenseSuspended {
				t.Errorf("listed state is not the stored one: %+v", st.License)
			}
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].License.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v (each once, in id order)", got, want)
	}
	if page, err := s.ListLicenses(ctx, "lic_list_06", 10); err != nil || len(page) != 0 {
		t.Fatalf("after the last id: %d, %v", len(page), err)
	}
}

func testAuditLog(t *testing.T, h *harness) {
	s := h.open(t)
	ctx := context.Background()
	base := now().Add(-time.Hour)
	for i := 0; i < 5; i++ {
		ev := store.AuditEvent{At: base.Add(time.Duration(i) * time.Minute), Actor: "admin", Action: fmt.Sprintf("a%d", i), LicenseID: "lic_1", Reason: "r"}
		if err := s.AppendAudit(ctx, ev); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	all, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil || len(all) != 5 {
		t.Fatalf("Audit: %d events, %v", len(all), err)
	}
	for i, ev := range all {
		if ev.Action != fmt.Sprintf("a%d", i) || ev.ID == "" || ev.Reason != "r" || !ev.At.Equal(base.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	page, err := s.Audit(ctx, store.AuditQuery{After: all[1].ID, Limit: 2})
	if err != nil || len(page) != 2 || page[0].Action != "a2" || page[1].Action != "a3" {
		t.Fatalf("page after %s: %+v, %v", all[1].ID, page, err)
	}
	if _, err := s.Audit(ctx, store.AuditQuery{After: "garbage(", Limit: 10}); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("a cursor the store never issued: %v, want ErrBadCursor", err)
	}
	since, err := s.Audit(ctx, store.AuditQuery{Since: base.Add(3 * time.Minute), Limit: 10})
	if err != nil || len(since) != 2 || since[0].Action != "a3" {
		t.Fatalf("since: %+v, %v", since, err)
	}
}

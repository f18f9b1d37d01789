package store_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/licensegate/licensegate/store"
)

func TestValidVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"1.2.3": true, "2.0.0-rc.1+build_7": true, "v10": true, "12345678901234567890123456789012": true,
		"": false, "1.0 beta": false, "1/2": false, "é": false, "123456789012345678901234567890123": false,
	} {
		if got := store.ValidVersion(v); got != want {
			t.Errorf("ValidVersion(%q) = %t, want %t", v, got, want)
		}
	}
}

// TestCountVersions: the deltas of a write, where each installation is
// counted, and the table read only for installations counted anew.
func TestCountVersions(t *testing.T) {
	in := func(id, v, status string, as string) store.Installation {
		return store.Installation{ID: id, Product: "p", Version: v, Status: status, VersionCountedAs: as}
	}
	old := []store.Installation{
		in("same", "1.0", store.InstallationActive, "1.0"),
		in("folded", "9.0", store.InstallationActive, store.VersionOther),
		in("upgraded", "1.0", store.InstallationActive, "1.0"),
		in("ended", "2.0", store.InstallationActive, "2.0"),
		in("gone", "2.0", store.InstallationActive, "2.0"),
	}
	next := []store.Installation{
		in("same", "1.0", store.InstallationActive, ""),
		in("folded", "9.0", store.InstallationActive, ""),
		in("upgraded", "3.0", store.InstallationActive, ""),
		in("ended", "2.0", store.InstallationDeactivated, "2.0"),
		in("new", "4.0", store.InstallationActive, "made-up"),
		in("unversioned", "", store.InstallationActive, ""),
	}
	reads := 0
	full := map[string]bool{"1.0": true, "2.0": true, "3.0": true}
	for i := len(full); i < store.MaxVersions; i++ {
		full[fmt.Sprint("x", i)] = true
	}
	deltas, err := store.CountVersions(old, next, func(product string) (map[string]bool, error) {
		reads++
		return full, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.VersionDelta{
		{Product: "p", Version: "1.0", N: -1}, {Product: "p", Version: "2.0", N: -2},
		{Product: "p", Version: "3.0", N: 1}, {Product: "p", Version: store.VersionOther, N: 1},
	}
	if !reflect.DeepEqual(deltas, want) {
		t.Errorf("deltas %+v, want %+v", deltas, want)
	}
	as := map[string]string{}
	for _, in := range next {
		as[in.ID] = in.VersionCountedAs
	}
	wantAs := map[string]string{"same": "1.0", "folded": store.VersionOther, "upgraded": "3.0", "ended": "", "new": store.VersionOther, "unversioned": ""}
	if !reflect.DeepEqual(as, wantAs) {
		t.Errorf("counted as %v, want %v", as, wantAs)
	}
	if reads != 1 {
		t.Errorf("the table was read %d times, want once", reads)
	}
	// A write that counts nobody anew reads no table.
	reads = 0
	if _, err := store.CountVersions(next, next[:2], func(string) (map[string]bool, error) { reads++; return nil, nil }); err != nil || reads != 0 {
		t.Errorf("a write counting nobody anew read the table %d times (%v)", reads, err)
	}
}

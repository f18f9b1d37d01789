package store_test

import (
	"testing"

	"github.com/licensegate/licensegate/store"
)

func TestOfferKeepsTheLastSlotForResync(t *testing.T) {
	ch := make(chan store.Change, 3)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		store.Offer(ch, store.Change{LicenseID: id})
	}
	want := []store.Change{{LicenseID: "a"}, {LicenseID: "b"}, {Resync: true}}
	for i, w := range want {
		if got := <-ch; got != w {
			t.Fatalf("notice %d = %+v, want %+v", i, got, w)
		}
	}
	// Read again: new notices flow, and a new overflow resyncs again.
	for _, id := range []string{"f", "g", "h"} {
		store.Offer(ch, store.Change{LicenseID: id})
	}
	want = []store.Change{{LicenseID: "f"}, {LicenseID: "g"}, {Resync: true}}
	for i, w := range want {
		if got := <-ch; got != w {
			t.Fatalf("after reading: notice %d = %+v, want %+v", i, got, w)
		}
	}
}

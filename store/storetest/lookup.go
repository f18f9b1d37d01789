package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// lookup asks the store for term's licences, failing the test on error.
func lookup(t *testing.T, s store.Store, term string) []string {
	t.Helper()
	ids, err := s.Lookup(context.Background(), term)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", term, err)
	}
	return ids
}

// testLookup: a licence is found by each of its terms from the write
// that gives it them, in id order, and no longer by a term a later write
// takes away; a term nobody has lists nothing.
func testLookup(t *testing.T, h *harness) {
	s := h.open(t)
	order := store.RefTerm("lemonsqueezy", "order", "2")
	key := store.RefTerm("lemonsqueezy", "license", "1")
	sub := store.RefTerm("lemonsqueezy", "subscription", "9:with:colons")
	for _, id := range []string{"lic_b", "lic_a"} {
		st := license(id)
		st.License.Refs = []string{order, key, order} // a repeat is one entry
		put(t, s, st)
	}
	if got, want := lookup(t, s, order), []string{"lic_a", "lic_b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup(order) = %v, want %v", got, want)
	}
	update(t, s, "lic_b", func(st *store.LicenseState) { st.License.Refs = []string{sub} })
	if got, want := lookup(t, s, order), []string{"lic_a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after lic_b's terms changed, Lookup(order) = %v, want %v", got, want)
	}
	if got, want := lookup(t, s, sub), []string{"lic_b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup(subscription) = %v, want %v", got, want)
	}
	// a write that keeps the terms keeps the entries
	update(t, s, "lic_a", func(st *store.LicenseState) { st.License.Status = store.LicenseSuspended })
	if got, want := lookup(t, s, key), []string{"lic_a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after a write keeping the terms, Lookup(key) = %v, want %v", got, want)
	}
	if got := lookup(t, s, store.RefTerm("lemonsqueezy", "order", "3")); len(got) != 0 || got == nil {
		t.Errorf("Lookup of a term nobody has = %#v, want an empty list", got)
	}
	// the prefix of a term is not the term
	if got := lookup(t, s, store.RefTerm("lemonsqueezy", "subscription", "9")); len(got) != 0 {
		t.Errorf("Lookup of a term's prefix = %v, want none", got)
	}
}

// testLookupBound: a term shared by more licences than MaxLookup lists
// MaxLookup of them.
func testLookupBound(t *testing.T, h *harness) {
	s := h.open(t)
	term := store.RefTerm("gumroad", "sale", "shared")
	for i := range store.MaxLookup + 5 {
		st := license(fmt.Sprintf("lic_%03d", i))
		st.License.Refs = []string{term}
		put(t, s, st)
	}
	got := lookup(t, s, term)
	if len(got) != store.MaxLookup || got[0] != "lic_000" || got[len(got)-1] != fmt.Sprintf("lic_%03d", store.MaxLookup-1) {
		t.Errorf("Lookup of a term of %d licences = %d ids (%v ... %v), want the first %d in id order",
			store.MaxLookup+5, len(got), first(got), last(got), store.MaxLookup)
	}
}

// testLookupSearchTerms: the author console's searches. A domain finds
// every licence with an installation on it that the state still holds,
// active or not; a moved installation's old domain, or a pruned one's,
// no longer does. A buyer's name finds its licence whatever its case; a
// name that is an e-mail address is no term, and is in no key.
func testLookupSearchTerms(t *testing.T, h *harness) {
	s := h.open(t)
	ins := func(lic, id, domain, status string) store.Installation {
		return store.Installation{ID: id, LicenseID: lic, Product: "p", Domain: domain, Status: status, CreatedAt: t0}
	}
	a := license("lic_a")
	a.License.Source, a.License.LicensedTo = "envato", "JohnDoe_42"
	a.Installations = []store.Installation{
		ins("lic_a", "ins_a1", "acme.com", store.InstallationActive),
		ins("lic_a", "ins_a2", "shop.example", store.InstallationDeactivated),
	}
	b := license("lic_b")
	b.License.Source, b.License.LicensedTo = "gumroad", "Someone@Example.com"
	b.Installations = []store.Installation{ins("lic_b", "ins_b1", "acme.com", store.InstallationActive)}
	put(t, s, a)
	put(t, s, b)
	expect := func(what, term string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if got := lookup(t, s, term); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Lookup(%s) = %v, want %v", what, term, got, want)
		}
	}
	expect("a shared domain", store.DomainTerm("acme.com"), "lic_a", "lic_b")
	expect("a deactivated installation kept in the state", store.DomainTerm("shop.example"), "lic_a")
	expect("the name as the marketplace spells it", store.BuyerTerm("envato", "JohnDoe_42"), "lic_a")
	expect("the name in another case", store.BuyerTerm("envato", "JOHNDOE_42"), "lic_a")
	expect("the name at another source", store.BuyerTerm("gumroad", "johndoe_42"))
	expect("an e-mail address as the name", store.BuyerTerm("gumroad", "someone@example.com"))
	if h.cfg.count != nil {
		if n := h.cfg.count(t, s, "omeone@"); n != 0 {
			t.Errorf("%d records hold the buyer's e-mail address in their name", n)
		}
	}

	// lic_b's installation moves to another domain.
	update(t, s, "lic_b", func(st *store.LicenseState) { st.Installations[0].Domain = "new.example" })
	expect("after the move, the old domain", store.DomainTerm("acme.com"), "lic_a")
	expect("after the move, the new domain", store.DomainTerm("new.example"), "lic_b")
	// lic_a's deactivated installation is pruned, and the buyer renamed.
	update(t, s, "lic_a", func(st *store.LicenseState) {
		st.Installations = st.Installations[:1]
		st.License.LicensedTo = "JaneDoe"
	})
	expect("a pruned installation's domain", store.DomainTerm("shop.example"))
	expect("the old name", store.BuyerTerm("envato", "johndoe_42"))
	expect("the new name", store.BuyerTerm("envato", "janedoe"), "lic_a")
}

func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func last(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

// asked reads the queue of asked checks, failing the test on error.
func asked(t *testing.T, s store.Store, limit int) []store.Ask {
	t.Helper()
	asks, err := s.Asked(context.Background(), limit)
	if err != nil {
		t.Fatalf("Asked: %v", err)
	}
	return asks
}

func askIDs(asks []store.Ask) []string {
	ids := []string{}
	for _, a := range asks {
		ids = append(ids, a.LicenseID)
	}
	return ids
}

// testAsks: asks are listed oldest first up to the limit, one entry per
// licence at its latest ask; DoneAsk removes an ask it served and keeps one
// asked for again after it.
func testAsks(t *testing.T, h *harness) {
	ctx := context.Background()
	s := h.open(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AskCheck(ctx, "lic_b", t0.Add(2*time.Second)))
	must(s.AskCheck(ctx, "lic_a", t0.Add(time.Second)))
	must(s.AskCheck(ctx, "lic_c", t0.Add(3*time.Second)))
	must(s.AskCheck(ctx, "lic_a", t0)) // earlier than its ask: kept at the later
	if got, want := askIDs(asked(t, s, 10)), []string{"lic_a", "lic_b", "lic_c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Asked = %v, want %v", got, want)
	}
	asks := asked(t, s, 2)
	if got, want := askIDs(asks), []string{"lic_a", "lic_b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Asked(2) = %v, want %v", got, want)
	}
	if !asks[0].At.Equal(t0.Add(time.Second)) {
		t.Errorf("lic_a asked at %v, want its later ask %v", asks[0].At, t0.Add(time.Second))
	}
	// lic_b is asked for again while its check runs: serving the first
	// ask must not drop the second
	must(s.AskCheck(ctx, "lic_b", t0.Add(5*time.Second)))
	must(s.DoneAsk(ctx, "lic_a", asks[0].At))
	must(s.DoneAsk(ctx, "lic_b", asks[1].At))
	must(s.DoneAsk(ctx, "lic_nobody", t0)) // no ask: no error
	left := asked(t, s, 10)
	if got, want := askIDs(left), []string{"lic_c", "lic_b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after DoneAsk, Asked = %v, want %v", got, want)
	}
	must(s.DoneAsk(ctx, "lic_b", left[1].At))
	must(s.DoneAsk(ctx, "lic_c", left[0].At))
	if got := asked(t, s, 10); len(got) != 0 {
		t.Errorf("after every ask was served, Asked = %v", askIDs(got))
	}
}

// testAskNotice: an ask is announced on the change feed, on every handle.
func testAskNotice(t *testing.T, h *harness) {
	s := h.open(t)
	feeds := []<-chan store.Change{subscribe(t, s)}
	if h.cfg.peer != nil {
		feeds = append(feeds, subscribe(t, h.cfg.peer(t, s)))
	}
	if err := s.AskCheck(context.Background(), "lic_1", t0); err != nil {
		t.Fatal(err)
	}
	for _, ch := range feeds {
		noticesUntilFunc(t, ch, "the ask", func(c store.Change) bool { return c.Asked && c.LicenseID == "lic_1" })
	}
}

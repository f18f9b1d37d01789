package gumroad

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/hooktest"
)

// The configured secrets (testdata/hooks/README.md).
const (
	pathToken  = "gr-path-token-0123456789abcdef"
	sellerID   = "kL0paVL2SdmJSYsNs-OCMg=="
	fixtureKey = "83DB262A-C19D3B06-A5235A6B-8C079166"
)

var hookNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ping is a delivery of body to …/gumroad/{token}.
func ping(body []byte, token string) upstreams.HookRequest {
	return upstreams.HookRequest{
		Method: http.MethodPost, Target: "/hooks/gumroad/" + token, Host: "licences.example.com", PathToken: token,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: body,
	}
}

func newTestHooks(t testing.TB) *Hooks {
	t.Helper()
	h, err := NewHooks(pathToken, sellerID)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHooksDocumentedPayloads(t *testing.T) {
	h := newTestHooks(t)
	sale := upstreams.VendorID{Kind: upstreams.IDSale, ID: "FO8TXN-dvxYabdavG97Y-Q=="}
	sub := upstreams.VendorID{Kind: upstreams.IDSubscription, ID: "GazW4_NBcQy-o7Gjjng7lw=="}
	tests := []struct {
		file    string
		want    upstreams.Hook
		wantErr error
	}{
		{file: "ping_sale.form", want: upstreams.Hook{Source: Name, Event: "sale", Key: fixtureKey, VendorIDs: []upstreams.VendorID{sale, sub}}},
		{file: "ping_refund.form", want: upstreams.Hook{Source: Name, Event: "refund", Key: fixtureKey, VendorIDs: []upstreams.VendorID{sale, sub}}},
		{file: "ping_sale_test_no_key.form", want: upstreams.Hook{Source: Name, Event: "sale", Test: true, VendorIDs: []upstreams.VendorID{sale}}},
		{
			// the subscription resources' payload has no seller_id: the
			// path token is the whole check
			file: "resource_cancellation.form",
			want: upstreams.Hook{Source: Name, Event: "cancellation", Key: "83DB262A-C19D3B06-A5235A6B-8C079166",
				VendorIDs: []upstreams.VendorID{sub}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := h.Verify(ping(hooktest.Fixture(t, tt.file), pathToken), hookNow)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Verify = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestHooksRefused(t *testing.T) {
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "ping_refund.form")
	otherSeller := []byte(strings.Replace(string(body), "seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D", "seller_id=zzzzVL2SdmJSYsNs-OCMg%3D%3D", 1))
	noSeller := []byte(strings.Replace(string(body), "seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D&", "", 1))
	tests := []struct {
		name string
		req  upstreams.HookRequest
	}{
		{"wrong token", ping(body, "gr-path-token-0123456789abcdeX")},
		{"token in another case", ping(body, strings.ToUpper(pathToken))},
		{"token cut short", ping(body, pathToken[:len(pathToken)-1])},
		{"token with more", ping(body, pathToken+"0")},
		{"no token", ping(body, "")},
		{"tampered seller_id", ping(otherSeller, pathToken)},
		{"no seller_id", ping(noSeller, pathToken)},
		{"a cancellation with another seller_id", ping(append(hooktest.Fixture(t, "resource_cancellation.form"), "&seller_id=zzzz"...), pathToken)},
		{"a sale calling itself a cancellation has its seller checked", ping([]byte(strings.Replace(string(otherSeller), "resource_name=refund", "resource_name=cancellation", 1)), pathToken)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooktest.Refused(t, h, tt.req, hookNow, upstreams.ErrHookSignature, hookSecrets...)
		})
	}
}

func TestHooksBodyIsNotSigned(t *testing.T) {
	// Gumroad signs nothing: beyond the seller, a changed body is not
	// seen here. What keeps it harmless is that a hook is a hint: the
	// licence it names is rechecked with Gumroad before anything changes.
	h := newTestHooks(t)
	body := []byte(strings.Replace(string(hooktest.Fixture(t, "ping_sale.form")), "license_key=83DB262A", "license_key=00000000", 1))
	got, err := h.Verify(ping(body, pathToken), hookNow)
	if err != nil || got.Key != "00000000-C19D3B06-A5235A6B-8C079166" {
		t.Fatalf("Verify = %v, %v", got, err)
	}
}

func TestHooksNoTimeWindow(t *testing.T) {
	// no send time: sale_timestamp (2021) is the sale's, and never a
	// reason to refuse
	h := newTestHooks(t)
	got, err := h.Verify(ping(hooktest.Fixture(t, "ping_refund.form"), pathToken), hookNow.AddDate(5, 0, 0))
	if err != nil || !got.At.IsZero() || got.DeliveryID != "" {
		t.Fatalf("Verify = %v at %v delivery %q, %v", got, got.At, got.DeliveryID, err)
	}
}

func TestHooksMalformedAfterVerification(t *testing.T) {
	h := newTestHooks(t)
	for _, body := range []string{
		"seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D&license_key=%zz" + fixtureKey,
		"seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D&resource_name=refund%20now&sale_id=1",
	} {
		_, err := h.Verify(ping([]byte(body), pathToken), hookNow)
		if !errors.Is(err, upstreams.ErrHookMalformed) {
			t.Errorf("Verify(%s) error = %v, want ErrHookMalformed", body, err)
		}
		noSecretIn(t, err)
	}
}

func TestHooksIgnored(t *testing.T) {
	h := newTestHooks(t)
	for _, body := range []string{
		// a resource that is not about a purchase (none today; a new one)
		"seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D&resource_name=payout&sale_id=1",
		// a sale ping naming nothing to look a licence up by
		"seller_id=kL0paVL2SdmJSYsNs-OCMg%3D%3D&product_id=32-nPainqpLj1B_WIwVlMw%3D%3D&license_key=%20",
	} {
		got, err := h.Verify(ping([]byte(body), pathToken), hookNow)
		if !errors.Is(err, upstreams.ErrHookIgnored) {
			t.Errorf("Verify(%s) error = %v, want ErrHookIgnored", body, err)
		}
		if got.Event == "" || got.Names() {
			t.Errorf("Verify(%s) = %v: an ignored hook keeps its event and names nothing", body, got)
		}
	}
}

func TestNewHooks(t *testing.T) {
	for _, tt := range []struct{ token, seller string }{
		{"", sellerID},
		{"short-token", sellerID},
		{"gr-path-token/0123456789", sellerID},
		{"gr-path-token 0123456789", sellerID},
		{pathToken, ""},
		{pathToken, "  "},
	} {
		_, err := NewHooks(tt.token, tt.seller)
		if err == nil {
			t.Errorf("NewHooks(%q, %q) accepted", tt.token, tt.seller)
		} else if tt.token != "" && strings.Contains(err.Error(), tt.token) {
			t.Errorf("NewHooks error %q quotes the token", err)
		}
	}
}

// noSecretIn fails when err quotes the path token or the fixtures' key.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	for _, s := range hookSecrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error %q quotes a secret", err)
		}
	}
}

// hookSecrets are what no refusal may quote: the path token and the
// fixtures' key.
var hookSecrets = []string{pathToken, fixtureKey, "C19D3B06"}

func FuzzParseHook(f *testing.F) {
	for _, name := range []string{"ping_sale.form", "ping_refund.form", "ping_sale_test_no_key.form", "resource_cancellation.form"} {
		f.Add(hooktest.Fixture(f, name))
	}
	f.Add([]byte("license_key=%zz&sale_id=;;&resource_name=&test=true"))
	f.Add([]byte("sale_id=" + strings.Repeat("9", 200) + "&license_key=" + strings.Repeat("k", 300)))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseHook(body)
		if err != nil {
			if !errors.Is(err, upstreams.ErrHookMalformed) && !errors.Is(err, upstreams.ErrHookIgnored) {
				t.Fatalf("error %v is neither malformed nor ignored", err)
			}
			if got.Names() {
				t.Fatalf("%v names %v", err, got)
			}
			return
		}
		if !got.Names() || got.Source != Name || got.Event == "" {
			t.Fatalf("accepted %v", got)
		}
		if len(got.Key) > upstreams.MaxAnyKeyLength {
			t.Fatalf("key of %d bytes", len(got.Key))
		}
		for _, id := range got.VendorIDs {
			if id.ID == "" || len(id.ID) > 128 || upstreams.HasUnprintable(id.ID) {
				t.Fatalf("vendor id %q", id.ID)
			}
		}
	})
}

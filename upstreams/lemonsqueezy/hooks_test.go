package lemonsqueezy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/hooktest"
)

// hookSecret is the signing secret the fixtures' signatures are made with
// (testdata/hooks/README.md).
const hookSecret = "lg-test-signing-secret"

// hookNow is any time: Lemon Squeezy sends none, so no window applies.
var hookNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sign is Lemon Squeezy's X-Signature: the hex HMAC-SHA256 of the body.
func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// hookRequest is a delivery of body with the X-Signature sig.
func hookRequest(body []byte, sig string) upstreams.HookRequest {
	h := http.Header{"Content-Type": {"application/json"}}
	if sig != "" {
		h.Set("X-Signature", sig)
	}
	return upstreams.HookRequest{Method: http.MethodPost, Target: "/hooks/lemonsqueezy", Host: "licences.example.com", Header: h, Body: body}
}

func newTestHooks(t testing.TB) *Hooks {
	t.Helper()
	h, err := NewHooks(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHooksDocumentedPayloads(t *testing.T) {
	h := newTestHooks(t)
	tests := []struct {
		file    string
		sig     string // openssl dgst -sha256 -hmac lg-test-signing-secret -hex < file
		want    upstreams.Hook
		wantErr error
	}{
		{
			file: "license_key_created.json",
			sig:  "e539e695ed7c7f7d2111cea89b856b01b948cb76d6f5febe3e6c50ef0ee20927",
			want: upstreams.Hook{Source: Name, Event: "license_key_created", Key: "80e15db5-c796-436b-850c-8f9c98a48abe",
				VendorIDs: []upstreams.VendorID{{Kind: upstreams.IDLicence, ID: "1"}, {Kind: upstreams.IDOrder, ID: "1"}}},
		},
		{
			file: "order_refunded.json",
			sig:  "fae85ff15c3d36d36f0889a05a5189827d28850d9f076cd287efa071be90923c",
			want: upstreams.Hook{Source: Name, Event: "order_refunded", VendorIDs: []upstreams.VendorID{{Kind: upstreams.IDOrder, ID: "1"}}},
		},
		{
			file: "subscription_created.json",
			sig:  "bd8a81ef7bf33a33dbcb950b8e8a897e5629c4f395300295e1373605d941fb78",
			want: upstreams.Hook{Source: Name, Event: "subscription_created",
				VendorIDs: []upstreams.VendorID{{Kind: upstreams.IDSubscription, ID: "1"}, {Kind: upstreams.IDOrder, ID: "2"}}},
		},
		{
			// a new order names no licence the gateway already holds
			file:    "order_created.json",
			sig:     "697d15d730478efc362f7e4e7f946f21a9b46157fa76820bd052819d9b249a4a",
			want:    upstreams.Hook{Source: Name, Event: "order_created"},
			wantErr: upstreams.ErrHookIgnored,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := hooktest.Fixture(t, tt.file)
			if got := sign(body, hookSecret); got != tt.sig {
				t.Fatalf("the fixture changed: its signature is %s, the table says %s", got, tt.sig)
			}
			got, err := h.Verify(hookRequest(body, tt.sig), hookNow)
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
	body := hooktest.Fixture(t, "license_key_created.json")
	good := sign(body, hookSecret)
	tampered := []byte(strings.Replace(string(body), `"order_id": 1,`, `"order_id": 2,`, 1))
	tests := []struct {
		name string
		req  upstreams.HookRequest
	}{
		{"tampered body", hookRequest(tampered, good)},
		{"wrong secret", hookRequest(body, sign(body, "another-secret"))},
		{"no signature", hookRequest(body, "")},
		{"signature not hex", hookRequest(body, "not-a-signature")},
		{"signature cut short", hookRequest(body, good[:32])},
		{"empty body", hookRequest(nil, good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooktest.Refused(t, h, tt.req, hookNow, upstreams.ErrHookSignature, hookSecrets...)
		})
	}
}

func TestHooksSignatureCase(t *testing.T) {
	// hex is hex in either case
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "order_refunded.json")
	if _, err := h.Verify(hookRequest(body, strings.ToUpper(sign(body, hookSecret))), hookNow); err != nil {
		t.Fatalf("upper-case hex signature: %v", err)
	}
}

func TestHooksNoTimeWindow(t *testing.T) {
	// Lemon Squeezy sends no time: a delivery verifies whenever it comes,
	// and the Hook says nothing about when it was sent.
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "order_refunded.json")
	for _, now := range []time.Time{{}, hookNow.AddDate(10, 0, 0)} {
		got, err := h.Verify(hookRequest(body, sign(body, hookSecret)), now)
		if err != nil || !got.At.IsZero() || got.DeliveryID != "" {
			t.Fatalf("Verify at %v = %v at %v delivery %q, %v", now, got, got.At, got.DeliveryID, err)
		}
	}
}

func TestHooksMalformedAfterVerification(t *testing.T) {
	h := newTestHooks(t)
	for _, body := range []string{
		`not json`,
		`{"meta":{},"data":{}}`,
		`{"meta":{"event_name":"order refunded"},"data":{}}`,
		`{"meta":{"event_name":"order_refunded"}} trailing`,
		`{"meta":{"event_name":["order_refunded"]}}`,
	} {
		_, err := h.Verify(hookRequest([]byte(body), sign([]byte(body), hookSecret)), hookNow)
		if !errors.Is(err, upstreams.ErrHookMalformed) {
			t.Errorf("Verify(%s) error = %v, want ErrHookMalformed", body, err)
		}
	}
}

func TestHooksIgnored(t *testing.T) {
	h := newTestHooks(t)
	for _, body := range []string{
		`{"meta":{"event_name":"affiliate_activated"},"data":{"type":"affiliates","id":"7"}}`,
		`{"meta":{"event_name":"order_created"},"data":{"type":"orders","id":"1"}}`,
		// the right event without any id to look a licence up by
		`{"meta":{"event_name":"order_refunded"},"data":{"type":"orders","id":null}}`,
		`{"meta":{"event_name":"license_key_updated"},"data":{"type":"license-keys","id":"x y","attributes":{"key":"k\u00e9y"}}}`,
	} {
		got, err := h.Verify(hookRequest([]byte(body), sign([]byte(body), hookSecret)), hookNow)
		if !errors.Is(err, upstreams.ErrHookIgnored) {
			t.Errorf("Verify(%s) error = %v, want ErrHookIgnored", body, err)
		}
		if got.Event == "" || got.Names() {
			t.Errorf("Verify(%s) = %v: an ignored hook keeps its event and names nothing", body, got)
		}
	}
}

func TestHooksIDs(t *testing.T) {
	// ids come as strings or numbers; a subscription invoice names its
	// subscription; test mode is read
	body := `{"meta":{"event_name":"subscription_payment_success","test_mode":true},` +
		`"data":{"type":"subscription-invoices","id":"9","attributes":{"subscription_id":820982911946154508}}}`
	got, err := ParseHook([]byte(body))
	want := upstreams.Hook{Source: Name, Event: "subscription_payment_success", Test: true,
		VendorIDs: []upstreams.VendorID{{Kind: upstreams.IDSubscription, ID: "820982911946154508"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseHook = %#v, %v\nwant %#v", got, err, want)
	}
}

func TestNewHooks(t *testing.T) {
	for _, secret := range []string{"", "12345"} {
		if _, err := NewHooks(secret); err == nil || (secret != "" && strings.Contains(err.Error(), secret)) {
			t.Errorf("NewHooks(%q) = %v, want an error that does not quote it", secret, err)
		}
	}
}

// hookSecrets are what no refusal may quote: the signing secret and the
// fixtures' key.
var hookSecrets = []string{hookSecret, "80e15db5-c796-436b-850c-8f9c98a48abe"}

func FuzzParseHook(f *testing.F) {
	for _, name := range []string{"license_key_created.json", "order_refunded.json", "subscription_created.json", "order_created.json"} {
		f.Add(hooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"meta":{"event_name":"subscription_payment_success"},"data":{"type":"subscription-invoices","attributes":{"subscription_id":1e400}}}`))
	f.Add([]byte(`{"meta":{"event_name":"license_key_updated"},"data":{"type":"license-keys","id":-1,"attributes":{"key":"` + strings.Repeat("k", 300) + `"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseHook(body)
		checkParsed(t, got, err)
	})
}

// checkParsed holds for every parse: a hook that is not an error names a
// licence, its fields are bounded and printable, and an error is one of
// the documented kinds.
func checkParsed(t *testing.T, got upstreams.Hook, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, upstreams.ErrHookMalformed) && !errors.Is(err, upstreams.ErrHookIgnored) {
			t.Fatalf("error %v is neither malformed nor ignored", err)
		}
		if errors.Is(err, upstreams.ErrHookMalformed) && got.Names() {
			t.Fatalf("a malformed hook names %v", got)
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
		if id.ID == "" || len(id.ID) > 128 || strings.ContainsAny(id.ID, " \t\r\n") {
			t.Fatalf("vendor id %q", id.ID)
		}
	}
}

package digitaldownloads

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/hooktest"
)

// hookSecret is the secret the fixtures' signatures are made with
// (testdata/hooks/README.md).
const hookSecret = "shpss-lg-test-webhook-secret"

// triggered is when the tests' deliveries say Shopify triggered them.
var triggered = time.Date(2026, 3, 1, 11, 58, 41, 123456789, time.UTC)

const (
	eventID   = "7b8c9d0a-1234-5678-90ab-cdef12345678"
	webhookID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
)

// shopifySign is X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of the body.
func shopifySign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// delivery is a Shopify delivery of body under topic, with the headers
// Shopify sends.
func delivery(topic string, body []byte, sig string) upstreams.HookRequest {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Shopify-Topic", topic)
	h.Set("X-Shopify-Shop-Domain", "licences-shop.myshopify.com")
	h.Set("X-Shopify-API-Version", "2026-04")
	h.Set("X-Shopify-Webhook-Id", webhookID)
	h.Set("X-Shopify-Event-Id", eventID)
	h.Set("X-Shopify-Triggered-At", triggered.Format(time.RFC3339Nano))
	if sig != "" {
		h.Set("X-Shopify-Hmac-Sha256", sig)
	}
	return upstreams.HookRequest{Method: http.MethodPost, Target: "/hooks/digitaldownloads", Host: "licences.example.com", Header: h, Body: body}
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
	order := []upstreams.VendorID{{Kind: upstreams.IDOrder, ID: "820982911946154508"}}
	tests := []struct {
		topic, file string
		sig         string // openssl dgst -sha256 -hmac shpss-lg-test-webhook-secret -binary < file | base64
		want        upstreams.Hook
		wantErr     error
	}{
		{topic: "orders/paid", file: "orders_paid.json", sig: "MCJk5uYi8e5PBQVkwykIBwSctaYpjzbJL1cudpgS72g=",
			want: upstreams.Hook{Source: name, Event: "orders/paid", DeliveryID: eventID, At: triggered, VendorIDs: order}},
		{topic: "orders/cancelled", file: "orders_cancelled.json", sig: "ojAAWIEUdHr5UlBLNcU6cG5BcJtGmGmrOLy5QZtZQcs=",
			want: upstreams.Hook{Source: name, Event: "orders/cancelled", DeliveryID: eventID, At: triggered, VendorIDs: order}},
		{topic: "refunds/create", file: "refunds_create.json", sig: "MP8Wwtve3JueImadK+/bgOqxR7wow6wjS+apNZZ/7jA=",
			// the order, not the refund's own id; digit for digit
			want: upstreams.Hook{Source: name, Event: "refunds/create", DeliveryID: eventID, At: triggered, VendorIDs: order}},
		{
			// a new order: its keys were never activated
			topic: "orders/create", file: "orders_create.json", sig: "MCJk5uYi8e5PBQVkwykIBwSctaYpjzbJL1cudpgS72g=",
			want:    upstreams.Hook{Source: name, Event: "orders/create", DeliveryID: eventID, At: triggered},
			wantErr: upstreams.ErrHookIgnored,
		},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			body := hooktest.Fixture(t, tt.file)
			if got := shopifySign(body, hookSecret); got != tt.sig {
				t.Fatalf("the fixture changed: its signature is %s, the table says %s", got, tt.sig)
			}
			got, err := h.Verify(delivery(tt.topic, body, tt.sig), triggered.Add(3*time.Second))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if !got.At.Equal(tt.want.At) {
				t.Errorf("At = %v, want %v", got.At, tt.want.At)
			}
			got.At = tt.want.At
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Verify = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestHooksRefused(t *testing.T) {
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "refunds_create.json")
	good := shopifySign(body, hookSecret)
	tampered := []byte(strings.Replace(string(body), `"order_id":820982911946154508`, `"order_id":820982911946154509`, 1))
	tests := []struct {
		name string
		req  upstreams.HookRequest
	}{
		{"tampered body", delivery("refunds/create", tampered, good)},
		{"wrong secret", delivery("refunds/create", body, shopifySign(body, "shpss-another-webhook-secret"))},
		{"no signature", delivery("refunds/create", body, "")},
		{"hex, not base64", delivery("refunds/create", body, strings.Repeat("ab", 32))},
		{"signature cut short", delivery("refunds/create", body, good[:20])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooktest.Refused(t, h, tt.req, triggered, upstreams.ErrHookSignature, hookSecret)
		})
	}
}

func TestHooksTimeWindow(t *testing.T) {
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "orders_paid.json")
	req := delivery("orders/paid", body, shopifySign(body, hookSecret))
	for _, tt := range []struct {
		now  time.Time
		want error
	}{
		{triggered.Add(upstreams.HookWindow), nil},
		{triggered.Add(-upstreams.HookWindow), nil},
		{triggered.Add(upstreams.HookWindow + time.Second), upstreams.ErrHookStale},
		{triggered.Add(-upstreams.HookWindow - time.Second), upstreams.ErrHookStale},
	} {
		got, err := h.Verify(req, tt.now)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Verify at %v: error = %v, want %v", tt.now.Sub(triggered), err, tt.want)
		}
		if tt.want != nil && got.Names() {
			t.Errorf("a stale hook names %v", got)
		}
	}

	unreadable := delivery("orders/paid", body, shopifySign(body, hookSecret))
	unreadable.Header.Set("X-Shopify-Triggered-At", "yesterday")
	if _, err := h.Verify(unreadable, triggered); !errors.Is(err, upstreams.ErrHookStale) {
		t.Errorf("unreadable X-Shopify-Triggered-At: error = %v, want ErrHookStale", err)
	}

	// without the header Shopify says nothing about the time: no window
	untimed := delivery("orders/paid", body, shopifySign(body, hookSecret))
	untimed.Header.Del("X-Shopify-Triggered-At")
	got, err := h.Verify(untimed, triggered.AddDate(1, 0, 0))
	if err != nil || !got.At.IsZero() {
		t.Errorf("without X-Shopify-Triggered-At: %v at %v, %v", got, got.At, err)
	}
}

func TestHooksDeliveryID(t *testing.T) {
	h := newTestHooks(t)
	body := hooktest.Fixture(t, "orders_paid.json")
	req := delivery("orders/paid", body, shopifySign(body, hookSecret))
	req.Header.Del("X-Shopify-Event-Id")
	if got, err := h.Verify(req, triggered); err != nil || got.DeliveryID != webhookID {
		t.Errorf("without X-Shopify-Event-Id: delivery %q, %v; want the webhook id", got.DeliveryID, err)
	}
	req.Header.Set("X-Shopify-Webhook-Id", "not an id")
	if got, err := h.Verify(req, triggered); err != nil || got.DeliveryID != "" {
		t.Errorf("with neither id usable: delivery %q, %v", got.DeliveryID, err)
	}
}

func TestHooksMalformedAfterVerification(t *testing.T) {
	h := newTestHooks(t)
	for _, tt := range []struct{ topic, body string }{
		{"orders/paid", `not json`},
		{"orders/paid", `{"id":1}{"id":2}`},
		{"orders/paid", `{"id":1,"test":"yes"}`},
		{"", `{"id":1}`},
		{"orders paid", `{"id":1}`},
	} {
		_, err := h.Verify(delivery(tt.topic, []byte(tt.body), shopifySign([]byte(tt.body), hookSecret)), triggered)
		if !errors.Is(err, upstreams.ErrHookMalformed) {
			t.Errorf("Verify(%q, %s) error = %v, want ErrHookMalformed", tt.topic, tt.body, err)
		}
	}
}

func TestHooksIgnored(t *testing.T) {
	h := newTestHooks(t)
	for _, tt := range []struct{ topic, body string }{
		{"products/update", `{"id":632910392}`},
		{"app/uninstalled", `{"id":548380009}`},
		{"orders/paid", `{"id":null}`},
		{"orders/paid", `{"id":-5}`},
		{"refunds/create", `{"id":890088186047892319}`}, // no order_id: the refund's id is not an order's
	} {
		got, err := h.Verify(delivery(tt.topic, []byte(tt.body), shopifySign([]byte(tt.body), hookSecret)), triggered)
		if !errors.Is(err, upstreams.ErrHookIgnored) {
			t.Errorf("Verify(%q, %s) error = %v, want ErrHookIgnored", tt.topic, tt.body, err)
		}
		if got.Event == "" || got.DeliveryID == "" || got.Names() {
			t.Errorf("Verify(%q, %s) = %v: an ignored hook keeps its topic and delivery and names nothing", tt.topic, tt.body, got)
		}
	}
}

func TestHooksTestOrder(t *testing.T) {
	got, err := ParseHook("orders/paid", []byte(`{"id":450789469,"test":true}`))
	if err != nil || !got.Test || got.VendorIDs[0].ID != "450789469" {
		t.Fatalf("ParseHook = %v, %v", got, err)
	}
}

func TestNewHooksSecret(t *testing.T) {
	for _, secret := range []string{"", "short-secret"} {
		_, err := NewHooks(secret)
		if err == nil || (secret != "" && strings.Contains(err.Error(), secret)) {
			t.Errorf("NewHooks(%q) = %v, want an error that does not quote it", secret, err)
		}
	}
}

func FuzzParseHook(f *testing.F) {
	f.Add("orders/paid", hooktest.Fixture(f, "orders_paid.json"))
	f.Add("refunds/create", hooktest.Fixture(f, "refunds_create.json"))
	f.Add("orders/cancelled", hooktest.Fixture(f, "orders_cancelled.json"))
	f.Add("orders/create", hooktest.Fixture(f, "orders_create.json"))
	f.Add("refunds/create", []byte(`{"order_id":1e30,"id":"x"}`))
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		got, err := ParseHook(topic, body)
		if err != nil {
			if !errors.Is(err, upstreams.ErrHookMalformed) && !errors.Is(err, upstreams.ErrHookIgnored) {
				t.Fatalf("error %v is neither malformed nor ignored", err)
			}
			if got.Names() {
				t.Fatalf("%v names %v", err, got)
			}
			return
		}
		if !orderTopics[got.Event] || len(got.VendorIDs) != 1 || got.Key != "" {
			t.Fatalf("accepted %v", got)
		}
		if id := got.VendorIDs[0]; id.Kind != upstreams.IDOrder || len(id.ID) > 128 || upstreams.HasUnprintable(id.ID) {
			t.Fatalf("vendor id %v", id)
		}
	})
}

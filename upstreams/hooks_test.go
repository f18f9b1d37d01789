package upstreams

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSecretEqual(t *testing.T) {
	tests := []struct {
		sent, configured string
		want             bool
	}{
		{"tok-1234567890abcdef", "tok-1234567890abcdef", true},
		{"tok-1234567890abcdeF", "tok-1234567890abcdef", false},
		{"tok-1234567890abcde", "tok-1234567890abcdef", false},
		{"tok-1234567890abcdefg", "tok-1234567890abcdef", false},
		{"", "tok-1234567890abcdef", false},
		{"", "", true}, // callers refuse an empty configured secret at provision
	}
	for _, tt := range tests {
		if got := SecretEqual([]byte(tt.sent), []byte(tt.configured)); got != tt.want {
			t.Errorf("SecretEqual(%q, %q) = %v, want %v", tt.sent, tt.configured, got, tt.want)
		}
	}
}

func TestCheckHookTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		at    time.Time
		stale bool
	}{
		{now, false},
		{now.Add(-HookWindow), false},
		{now.Add(HookWindow), false},
		{now.Add(-HookWindow - time.Second), true},
		{now.Add(HookWindow + time.Second), true},
		{time.Time{}, true},
	} {
		if err := CheckHookTime(tt.at, now); (err != nil) != tt.stale || (err != nil && err != ErrHookStale) {
			t.Errorf("CheckHookTime(%v) = %v, want stale %v", tt.at, err, tt.stale)
		}
	}
}

func TestHookID(t *testing.T) {
	var v struct {
		A, B, C, D, E, F, G HookID
	}
	body := `{"A":"1","B":820982911946154508,"C":1.5,"D":-3,"E":null,"F":{"x":1},"G":true}`
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	want := [...]HookID{"1", "820982911946154508", "", "", "", "", ""}
	got := [...]HookID{v.A, v.B, v.C, v.D, v.E, v.F, v.G}
	if got != want {
		t.Errorf("HookIDs = %q, want %q", got, want)
	}
}

func TestAddVendorID(t *testing.T) {
	var ids []VendorID
	for _, id := range []string{"", "a b", "caf\u00e9", strings.Repeat("9", 129), "\x00", "ok-1", strings.Repeat("9", 128)} {
		ids = AddVendorID(ids, IDOrder, id)
	}
	if len(ids) != 2 || ids[0].ID != "ok-1" || ids[0].Kind != IDOrder {
		t.Errorf("AddVendorID kept %q", ids)
	}
}

func TestHookEvent(t *testing.T) {
	for name, ok := range map[string]bool{
		"order_refunded": true, "orders/paid": true, "license.suspended": true,
		"": false, "order refunded": false, "\u00e9v": false, strings.Repeat("e", 101): false,
	} {
		if _, got := HookEvent(name); got != ok {
			t.Errorf("HookEvent(%q) ok = %v, want %v", name, got, ok)
		}
	}
}

func TestHookKey(t *testing.T) {
	if got := HookKey("  80E15DB5-C796-436B-850C-8F9C98A48ABE\n"); got != "80E15DB5-C796-436B-850C-8F9C98A48ABE" {
		t.Errorf("HookKey trims to %q", got)
	}
	for _, bad := range []string{"", "  ", "k\u00e9y", "in ner", strings.Repeat("k", MaxAnyKeyLength+1)} {
		if got := HookKey(bad); got != "" {
			t.Errorf("HookKey(%.20q) = %q, want it dropped", bad, got)
		}
	}
}

func TestHookStringLeavesOutTheKey(t *testing.T) {
	h := Hook{Source: "lemonsqueezy", Event: "license_key_updated", DeliveryID: "d-1",
		Key: "80e15db5-c796-436b-850c-8f9c98a48abe", VendorIDs: []VendorID{{IDLicence, "1"}}, Test: true}
	s := h.String()
	if strings.Contains(s, h.Key) {
		t.Fatalf("String() = %q quotes the key", s)
	}
	for _, part := range []string{"lemonsqueezy", "license_key_updated", "delivery=d-1", "license=1", "key=[redacted]", "test"} {
		if !strings.Contains(s, part) {
			t.Errorf("String() = %q lacks %q", s, part)
		}
	}
}

func TestDecodeHookJSON(t *testing.T) {
	var v struct{ A string }
	for body, ok := range map[string]bool{
		`{"A":"x"}`:          true,
		` {"A":"x"} ` + "\n": true,
		`{"A":"x"}{}`:        false,
		`{"A":1}`:            false,
		``:                   false,
		`{"A":`:              false,
	} {
		if err := DecodeHookJSON([]byte(body), &v); (err == nil) != ok {
			t.Errorf("DecodeHookJSON(%q) = %v, want ok %v", body, err, ok)
		}
	}
	long := `{"A":"` + strings.Repeat("x", MaxHookBody) + `"}`
	if err := DecodeHookJSON([]byte(long), &v); err == nil {
		t.Error("DecodeHookJSON accepted a body longer than MaxHookBody")
	}
}

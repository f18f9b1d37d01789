package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

func TestValidateActivation(t *testing.T) {
	s := &Service{}
	ok := ActivateRequest{Key: "KEY-1", Domain: "https://www.Acme.com/shop"}
	tests := []struct {
		name  string
		req   func(r *ActivateRequest)
		field string // "" when valid
	}{
		{"valid", func(*ActivateRequest) {}, ""},
		{"no key", func(r *ActivateRequest) { r.Key = "" }, "license_key"},
		{"no domain", func(r *ActivateRequest) { r.Domain = "" }, "domain"},
		{"overlong domain", func(r *ActivateRequest) { r.Domain = strings.Repeat("a", maxDomainLength+1) }, "domain"},
		{"bad domain", func(r *ActivateRequest) { r.Domain = "a..b" }, "domain"},
		{"bad ip", func(r *ActivateRequest) { r.IP = "999.1.1.1" }, "ip"},
		// Issue 20, L3: 4 KiB of text as an IPv6 zone is not an address.
		{"ip with a zone", func(r *ActivateRequest) { r.IP = "fe80::1%" + strings.Repeat("x", 4096) }, "ip"},
		{"ip with a short zone", func(r *ActivateRequest) { r.IP = "fe80::1%eth0" }, "ip"},
		{"plain label", func(r *ActivateRequest) { r.Label = "Shop – main server" }, ""},
		{"long label", func(r *ActivateRequest) { r.Label = strings.Repeat("x", maxLabelLength+1) }, "label"},
		{"escape in label", func(r *ActivateRequest) { r.Label = "shop\x1b[31m" }, "label"},
		{"right-to-left override in label", func(r *ActivateRequest) { r.Label = "shop\u202egpj.exe" }, "label"},
		{"zero-width space in label", func(r *ActivateRequest) { r.Label = "sh\u200bop" }, "label"},
		{"invalid UTF-8 in label", func(r *ActivateRequest) { r.Label = "sh\xffop" }, "label"},
		{"unknown product", func(r *ActivateRequest) { r.Product = "nope" }, "product"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.req(&req)
			domain, err := s.validateActivation(&req)
			if tt.field == "" {
				if err != nil || domain != "acme.com" {
					t.Fatalf("validateActivation = %q, %v; want acme.com", domain, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeValidationFailed || len(e.Fields[tt.field]) == 0 {
				t.Fatalf("validateActivation error %v, want validation_failed on %s", err, tt.field)
			}
		})
	}
}

// Issue 20, contract item 4: expiry_grace is for a source that cannot
// answer at expiry. A source that answers now with a passed expiry (an
// author's key file with a past expires_at) is refused license_expired;
// a stored licence whose source is not asked keeps its grace.
func TestExpiryGraceOnlyWithoutAnAnswer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	past := f.clock.Now().Add(-time.Hour)
	f.src.answer = &upstreams.Verdict{Outcome: upstreams.Valid, Record: upstreams.Record{Product: "p", Type: "regular", ExpiresAt: &past}}
	_, err := f.svc.Activate(ctx, ActivateRequest{Key: "KEY-EXPIRED", Domain: "buyer.com"})
	wantCode(t, err, CodeLicenseExpired)

	soon := f.clock.Now().Add(time.Hour)
	f.src.answer = &upstreams.Verdict{Outcome: upstreams.Valid, Record: upstreams.Record{Product: "p", Type: "regular", ExpiresAt: &soon}}
	f.activate("KEY-SOON", "buyer.com")
	f.clock.Advance(2 * time.Hour) // past the expiry; the source is not asked again
	if _, err := f.svc.Activate(ctx, ActivateRequest{Key: "KEY-SOON", Domain: "buyer.com"}); err != nil {
		t.Fatalf("re-activation of a stored licence within its expiry grace: %v", err)
	}
}

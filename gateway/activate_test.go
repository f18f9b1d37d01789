package gateway

import (
	"errors"
	"strings"
	"testing"
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

package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCSRFTokenBinding(t *testing.T) {
	m := testMaster(t, 0)
	portal, console := NewCSRF(m, "__Host-licensegate_portal"), NewCSRF(m, "__Host-licensegate_console")
	base := portal.Token("session", "s1")
	tests := []struct {
		name string
		tok  string
		same bool
	}{
		{"same binding", portal.Token("session", "s1"), true},
		{"another session", portal.Token("session", "s2"), false},
		{"another kind", portal.Token("signin", "s1"), false},
		{"parts not merely concatenated", portal.Token("sessions", "1"), false},
		{"another surface", console.Token("session", "s1"), false},
		{"another secret", NewCSRF(testMaster(t, 1), "__Host-licensegate_portal").Token("session", "s1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.tok == base) != tt.same {
				t.Errorf("token equal = %v, want %v", tt.tok == base, tt.same)
			}
		})
	}
}

func TestCSRFVerify(t *testing.T) {
	c := NewCSRF(testMaster(t, 0), "p")
	tok := c.Token("session", "s1")
	tests := []struct {
		name   string
		method string
		body   string
		want   error
	}{
		{"form token", http.MethodPost, url.Values{CSRFField: {tok}}.Encode(), nil},
		{"wrong token", http.MethodPost, url.Values{CSRFField: {tok[:len(tok)-1] + "0"}}.Encode(), ErrCSRFToken},
		{"token with a suffix", http.MethodPost, url.Values{CSRFField: {tok + "0"}}.Encode(), ErrCSRFToken},
		{"body over the bound", http.MethodPost, url.Values{"pad": {strings.Repeat("x", maxFormBytes)}, CSRFField: {tok}}.Encode(), ErrCSRFToken},
		{"DELETE is checked too", http.MethodDelete, "", ErrCSRFToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://h/account/x", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if err := c.Verify(r, "session", "s1"); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

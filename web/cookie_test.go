package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestInsecureLocal(t *testing.T) {
	tests := []struct {
		host string
		tls  bool
		want bool
	}{
		{"localhost", false, true},
		{"LOCALHOST:8080", false, true},
		{"127.0.0.1", false, true},
		{"127.0.0.1:2015", false, true},
		{"[::1]:2015", false, true},
		{"localhost", true, false},
		{"127.0.0.2", false, false},
		{"localhost.evil.example", false, false},
		{"licenses.example.com", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
			r.TLS = nil
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := insecureLocal(r); got != tt.want {
				t.Errorf("insecureLocal = %v, want %v", got, tt.want)
			}
		})
	}
}

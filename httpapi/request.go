package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// Bearer returns the request's Bearer token (RFC 6750 section 2.1).
func Bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// ClientAddr returns the address a request came from, as the server in
// front decided it: Caddy honours trusted_proxies and keeps the answer in
// its request vars, which package httpapi cannot read without importing
// Caddy, so each surface is given the function.
type ClientAddr func(*http.Request) string

// RemoteHost is the ClientAddr of a server with no proxy in front: the
// connection's own address.
func RemoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

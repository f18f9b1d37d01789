package httpapi

import (
	"net/http"
	"net/textproto"
	"strings"
)

// The gate's forwarded licence facts are X-License-* request headers
// (SPEC section 6): none a client sent may reach the backend beside them.

// StripLicenseHeaders removes every header the client sent that could
// pass for one the gate sets, and every Connection token naming one:
// reverse_proxy deletes the headers a client's Connection header names
// (RFC 9110 section 7.6.1) after the gate has set its own, so
// "Connection: X-License-Support-Active" would hide the gate's answer
// from the backend.
func StripLicenseHeaders(h http.Header) {
	for name := range h {
		if IsLicenseHeader(name) {
			delete(h, name) // name is the map's own key: no canonicalising
		}
	}
	if conn, ok := h["Connection"]; ok && namesLicenseHeader(conn) {
		if kept := connectionTokensWithout(conn); kept != "" {
			h["Connection"] = []string{kept}
		} else {
			delete(h, "Connection")
		}
	}
}

// namesLicenseHeader reports whether a Connection header's values name a
// licence header. It allocates nothing: most requests carry no Connection
// header or just "keep-alive".
func namesLicenseHeader(values []string) bool {
	for _, v := range values {
		for v != "" {
			var token string
			token, v, _ = strings.Cut(v, ",")
			if IsLicenseHeader(textproto.TrimString(token)) {
				return true
			}
		}
	}
	return false
}

// connectionTokensWithout joins a Connection header's tokens except those
// naming a licence header.
func connectionTokensWithout(values []string) string {
	var kept []string
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			if token = textproto.TrimString(token); token != "" && !IsLicenseHeader(token) {
				kept = append(kept, token)
			}
		}
	}
	return strings.Join(kept, ", ")
}

// IsLicenseHeader reports whether a client-sent header could pass for one
// the gate forwards. CGI-style backends (php_fastcgi) turn both "-" and "_"
// into "_", so X-License_Type would reach PHP as HTTP_X_LICENSE_TYPE beside
// the gate's own value. Caddy drops underscore headers by default, but an
// author may allow some (expected_underscore_headers); both spellings are
// stripped here regardless.
func IsLicenseHeader(name string) bool {
	const prefix = "x-license-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false // most names: at the first byte
		}
	}
	return true
}

package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/licensegate/licensegate/secret"
)

// HostPrefix is the cookie-name prefix that makes a browser accept the
// cookie only with Secure, Path=/ and no Domain, so a sibling subdomain or a
// plain-HTTP page on the same host cannot plant or overwrite it.
const HostPrefix = "__Host-"

// MaxCookieBytes bounds a whole Set-Cookie value (name, value and
// attributes): 4096 bytes is what RFC 6265 section 6.1 asks every browser
// to keep, and a larger cookie would be dropped silently, signing the
// buyer out with no error anywhere.
const MaxCookieBytes = 4096

// maxSealedValue bounds what read decodes, so a forged huge cookie costs
// nothing to refuse.
const maxSealedValue = MaxCookieBytes

// ErrCookieTooLarge means a sealed cookie would exceed MaxCookieBytes and
// was not set.
var ErrCookieTooLarge = errors.New("sealed cookie exceeds 4096 bytes")

// sealedCookie is one cookie whose value is JSON sealed with the master
// secret. The expiry travels inside the seal, so a cookie a browser (or an
// attacker) keeps past its Max-Age still reads as absent.
type sealedCookie struct {
	master *secret.Master
	name   string // with HostPrefix; nameFor drops it on plain-HTTP localhost
	now    func() time.Time
	// local allows the relaxed cookie on plain-HTTP localhost at all:
	// only a surface whose public address is localhost (development). A
	// proxy that ends TLS and passes "Host: localhost" on must not get
	// cookies without Secure and __Host- for a public site.
	local bool
}

// envelope is the sealed plaintext: the expiry (Unix seconds) and the
// caller's value.
type envelope struct {
	Exp   int64           `json:"exp"`
	Value json.RawMessage `json:"v"`
}

// insecureLocal reports whether r is plain HTTP to this machine by name:
// the one case where a cookie may go without Secure (a developer's
// http://localhost). Its Host header is the client's word, but a browser
// only sends localhost to a server on its own machine, so a remote client
// claiming it gains only a weaker cookie for itself.
func insecureLocal(r *http.Request) bool {
	if r.TLS != nil {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	switch strings.ToLower(host) {
	case "localhost", "127.0.0.1", "::1", "[::1]":
		return true
	}
	return false
}

// nameFor is the cookie's name for r. Browsers refuse a __Host- cookie
// without Secure, and refuse Secure from a plain-HTTP page, so on
// plain-HTTP localhost the prefix is dropped. The name is also the seal's
// associated data: a cookie sealed under the relaxed name never opens under
// the __Host- one.
func (c sealedCookie) nameFor(r *http.Request) string {
	if c.relaxed(r) {
		return strings.TrimPrefix(c.name, HostPrefix)
	}
	return c.name
}

// relaxed says whether r gets the relaxed cookie.
func (c sealedCookie) relaxed(r *http.Request) bool { return c.local && insecureLocal(r) }

// cookie builds the cookie with the attributes __Host- requires: Secure
// (unless insecureLocal), Path=/ and no Domain. HttpOnly keeps it from any
// script; SameSite=Lax keeps it off cross-site POSTs while still sending it
// on the top-level GET back from an OAuth provider.
func (c sealedCookie) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     c.nameFor(r),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   !c.relaxed(r),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// write seals v until expires and sets it on w. The error never includes v.
func (c sealedCookie) write(w http.ResponseWriter, r *http.Request, v any, expires time.Time) error {
	maxAge := int(expires.Sub(c.now()).Round(time.Second) / time.Second)
	if maxAge <= 0 {
		return fmt.Errorf("sealing cookie %s: expiry is not in the future", c.name)
	}
	value, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sealing cookie %s: %w", c.name, err)
	}
	plain, err := json.Marshal(envelope{Exp: expires.Unix(), Value: value})
	if err != nil {
		return fmt.Errorf("sealing cookie %s: %w", c.name, err)
	}
	name := c.nameFor(r)
	sealed := base64.RawURLEncoding.EncodeToString(c.master.Seal(plain, []byte(name)))
	ck := c.cookie(r, sealed, maxAge)
	if len(ck.String()) > MaxCookieBytes {
		return fmt.Errorf("sealing cookie %s: %w", c.name, ErrCookieTooLarge)
	}
	http.SetCookie(w, ck)
	return nil
}

// read opens the cookie into v and returns its expiry. Anything short of a
// well-formed, unexpired value sealed by this secret under this name reads
// as absent (false): a tampered, foreign or expired cookie is no session,
// never an error to show or log. A request may carry several cookies of
// the name (only possible for the relaxed localhost name); the first that
// opens wins.
func (c sealedCookie) read(r *http.Request, v any) (time.Time, bool) {
	name := c.nameFor(r)
	for _, ck := range r.CookiesNamed(name) {
		if exp, ok := c.open(name, ck.Value, v); ok {
			return exp, true
		}
	}
	return time.Time{}, false
}

// open decodes one cookie value; see read.
func (c sealedCookie) open(name, value string, v any) (time.Time, bool) {
	if value == "" || len(value) > maxSealedValue {
		return time.Time{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return time.Time{}, false
	}
	plain, err := c.master.Open(sealed, []byte(name))
	if err != nil {
		return time.Time{}, false
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return time.Time{}, false
	}
	exp := time.Unix(env.Exp, 0)
	if !c.now().Before(exp) {
		return time.Time{}, false
	}
	if err := json.Unmarshal(env.Value, v); err != nil {
		return time.Time{}, false
	}
	return exp, true
}

// clear tells the browser to drop the cookie. It carries the same
// attributes as write, or a browser would refuse to overwrite a __Host-
// cookie.
func (c sealedCookie) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, c.cookie(r, "", -1))
}

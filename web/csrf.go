package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"github.com/licensegate/licensegate/secret"
)

// CSRFField is the name of the hidden form field that carries the token.
const CSRFField = "csrf_token"

// maxFormBytes bounds the form body Verify parses: the pages' forms carry
// a token, a reason and a few ids, never files.
const maxFormBytes = 64 << 10

// Errors Verify returns. Neither names the token or its key, so either may
// be logged.
var (
	// ErrCSRFToken means the form's token is missing or is not the one
	// for this session.
	ErrCSRFToken = errors.New("csrf: missing or wrong token")
	// ErrCrossOrigin means the browser said the request came from another
	// site (Sec-Fetch-Site or Origin).
	ErrCrossOrigin = errors.New("csrf: cross-origin request")
)

// CSRF makes and checks synchronizer tokens. A token is a keyed hash
// (secret.Master.Hash) of a purpose and a binding (the session's random
// id), so it needs no storage, differs per session and per surface, and
// changes when the session does (a new sign-in gets a new id). Keeping
// the token out of the session cookie matters: an attacker who can make
// the browser send the cookie still cannot read the page that holds the
// token.
type CSRF struct {
	master  *secret.Master
	purpose string
	origin  *http.CrossOriginProtection
}

// NewCSRF returns a CSRF whose tokens are bound to purpose (one per
// surface, e.g. the session cookie's name), so a portal token is no
// console token.
func NewCSRF(master *secret.Master, purpose string) *CSRF {
	return &CSRF{master: master, purpose: purpose, origin: http.NewCrossOriginProtection()}
}

// Token returns the token for binding (with its kind, e.g. "session" and
// the session id). The same binding always gives the same token.
func (c *CSRF) Token(binding ...string) string {
	parts := append([]string{"licensegate web csrf v1", c.purpose}, binding...)
	return c.master.Hash(parts...)
}

// Verify checks a state-changing request: first the browser's own word on
// where it came from (Sec-Fetch-Site, else Origin against Host; requests
// with neither, such as old browsers, rely on the token alone), then the
// form's token against Token(binding...), compared in constant time. The
// token is read from the POST body only: a token in a URL would leak
// through logs and history. The body read is bounded.
func (c *CSRF) Verify(r *http.Request, binding ...string) error {
	if err := c.origin.Check(r); err != nil {
		return fmt.Errorf("%w: %w", ErrCrossOrigin, err)
	}
	if r.PostForm == nil && r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	}
	got := r.PostFormValue(CSRFField)
	want := c.Token(binding...)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrCSRFToken
	}
	return nil
}

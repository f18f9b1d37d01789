package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SignIn is the state of a sign-in in progress, kept in its own short-lived
// sealed cookie before any session exists. Two things need it:
//
//   - OAuth ("Sign in with Envato"): the state parameter must be bound to
//     the browser that started the flow, or an attacker can finish their
//     own authorization in a victim's browser (login CSRF) or replay a
//     callback; the PKCE verifier must stay with that browser too. A sealed
//     cookie does both with no server-side store, across instances.
//   - The e-mail sign-in form is posted by someone who is not signed in, so
//     its CSRF token needs a binding other than a session: this ID. Without
//     it (and for browsers that send neither Sec-Fetch-Site nor Origin),
//     another site could make visitors' browsers request sign-in links for
//     addresses of its choosing, spending their per-client limits and
//     mailing people from the author's domain.
type SignIn struct {
	// ID is random: the OAuth state and the sign-in form's CSRF binding.
	ID string `json:"id"`
	// Verifier is a PKCE code_verifier (RFC 7636: 43 characters of
	// base64url from 32 random bytes); send its S256 challenge.
	Verifier string `json:"v"`
	// ReturnTo is where to land after sign-in (the 409's portal_url deep
	// link); pass it through LocalPath first.
	ReturnTo string `json:"r,omitempty"`
	// ExpiresAt ends the attempt (SessionsConfig.SignInTTL after it began).
	ExpiresAt time.Time `json:"-"`
}

// BeginSignIn starts a sign-in attempt and sets its cookie, replacing any
// earlier attempt of this browser.
func (s *Sessions) BeginSignIn(w http.ResponseWriter, r *http.Request, returnTo string) (SignIn, error) {
	si := SignIn{
		ID:        randomID(),
		Verifier:  pkceVerifier(),
		ReturnTo:  returnTo,
		ExpiresAt: s.now().Add(s.signInTTL).Truncate(time.Second),
	}
	if err := s.signIn.write(w, r, si, si.ExpiresAt); err != nil {
		return SignIn{}, fmt.Errorf("beginning sign-in: %w", err)
	}
	return si, nil
}

// ReadSignIn returns the browser's sign-in attempt, if one is valid.
func (s *Sessions) ReadSignIn(r *http.Request) (SignIn, bool) {
	var si SignIn
	exp, ok := s.signIn.read(r, &si)
	if !ok || si.ID == "" {
		return SignIn{}, false
	}
	si.ExpiresAt = exp
	return si, true
}

// MatchState returns the sign-in attempt whose ID equals the OAuth state
// the provider sent back (compared in constant time). A forged state, or
// a callback replayed in a browser that did not start it (or whose attempt
// Start or EndSignIn spent), finds none.
func (s *Sessions) MatchState(r *http.Request, state string) (SignIn, bool) {
	si, ok := s.ReadSignIn(r)
	if !ok || state == "" || subtle.ConstantTimeCompare([]byte(si.ID), []byte(state)) != 1 {
		return SignIn{}, false
	}
	return si, true
}

// EndSignIn drops the sign-in attempt (Start also does).
func (s *Sessions) EndSignIn(w http.ResponseWriter, r *http.Request) {
	s.signIn.clear(w, r)
}

// SignInCSRFToken is the token the sign-in form carries in CSRFField.
func (s *Sessions) SignInCSRFToken(si SignIn) string {
	return s.csrf.Token("signin", si.ID)
}

// VerifySignIn checks the post of a sign-in form and returns its attempt:
// ErrNoSession without one (expired: show the form again), else
// CSRF.Verify's errors.
func (s *Sessions) VerifySignIn(r *http.Request) (SignIn, error) {
	si, ok := s.ReadSignIn(r)
	if !ok {
		return SignIn{}, ErrNoSession
	}
	if err := s.csrf.Verify(r, "signin", si.ID); err != nil {
		return SignIn{}, err
	}
	return si, nil
}

// pkceVerifier returns a code_verifier of 32 random bytes.
func pkceVerifier() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LocalPath returns p if it is a path on this site under base (base itself
// or below it), with its query, and false otherwise. It keeps a "return
// to" parameter from sending a freshly signed-in buyer to another site
// (open redirect): no scheme, no host, no "//" or "\" tricks, no
// "." or ".." segments that would climb out of base.
func LocalPath(base, p string) (string, bool) {
	base = strings.TrimSuffix(base, "/")
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\x00\r\n\t") {
		return "", false
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return "", false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	if u.Path != base && !strings.HasPrefix(u.Path, base+"/") {
		return "", false
	}
	return u.RequestURI(), true
}

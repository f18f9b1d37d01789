package web

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/licensegate/licensegate/secret"
)

// Defaults for SessionsConfig.
const (
	DefaultSessionTTL = 12 * time.Hour
	DefaultSignInTTL  = 10 * time.Minute
	flashTTL          = 5 * time.Minute
)

// Suffixes of the companion cookies' names.
const (
	flashSuffix  = "_flash"
	signInSuffix = "_signin"
)

// ErrNoSession means the request carries no valid session.
var ErrNoSession = errors.New("no session")

// SessionsConfig configures Sessions.
type SessionsConfig struct {
	// Master seals the cookies and keys the CSRF tokens. Required.
	Master *secret.Master
	// CookieName is the session cookie's name; it must start with
	// "__Host-" (e.g. "__Host-licensegate_portal"). The flash and sign-in
	// cookies are named after it with "_flash" and "_signin".
	CookieName string
	// TTL is how long a session lasts from sign-in. Default 12h.
	TTL time.Duration
	// SignInTTL is how long a sign-in may take (from the sign-in page to
	// the OAuth callback or the form post). Default 10m.
	SignInTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// LocalDevelopment allows cookies without Secure and the __Host-
	// prefix to plain-HTTP requests for localhost: set it only when the
	// surface's own address is http://localhost (or 127.0.0.1, ::1).
	LocalDevelopment bool
}

// Sessions keeps a surface's state in sealed cookies: the session itself,
// a one-shot flash message and the pre-session sign-in state. It is safe
// for concurrent use and holds nothing per request.
type Sessions struct {
	session, flash, signIn sealedCookie
	ttl, signInTTL         time.Duration
	now                    func() time.Time
	csrf                   *CSRF
}

// NewSessions checks cfg and returns its Sessions.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	if cfg.Master == nil {
		return nil, errors.New("sessions: a master secret is required")
	}
	if err := checkCookieName(cfg.CookieName); err != nil {
		return nil, fmt.Errorf("sessions: cookie name: %w", err)
	}
	if cfg.TTL < 0 || cfg.SignInTTL < 0 {
		return nil, errors.New("sessions: TTLs must not be negative")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultSessionTTL
	}
	if cfg.SignInTTL == 0 {
		cfg.SignInTTL = DefaultSignInTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cookie := func(name string) sealedCookie {
		return sealedCookie{master: cfg.Master, name: name, now: cfg.Now, local: cfg.LocalDevelopment}
	}
	return &Sessions{
		session:   cookie(cfg.CookieName),
		flash:     cookie(cfg.CookieName + flashSuffix),
		signIn:    cookie(cfg.CookieName + signInSuffix),
		ttl:       cfg.TTL,
		signInTTL: cfg.SignInTTL,
		now:       cfg.Now,
		csrf:      NewCSRF(cfg.Master, cfg.CookieName),
	}, nil
}

// checkCookieName insists on the __Host- prefix (the only production name
// the browser protects from sibling hosts) and on a token a browser keeps.
func checkCookieName(name string) error {
	base, ok := strings.CutPrefix(name, HostPrefix)
	if !ok || base == "" {
		return fmt.Errorf("%q must start with %q and name something", name, HostPrefix)
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q may hold only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

// Session is a signed-in person: who, what their sign-in proved, and when.
// It lives only in the sealed cookie, so keep it small: a cookie over
// MaxCookieBytes is refused (about 60 licence ids of 40 characters fit).
type Session struct {
	// ID is random per sign-in: it binds the CSRF token and lets an audit
	// line tell two sign-ins of one person apart (log a hash of it, never
	// the id itself with a token).
	ID string
	// Identity is who signed in, e.g. "envato:alice" or "email:<hash>".
	Identity string
	// Licenses are the licence ids the sign-in proved; or, for more than
	// a cookie holds, Ref names where the caller kept them (StartRef).
	Licenses []string
	Ref      string
	// IssuedAt and ExpiresAt bound the session.
	IssuedAt, ExpiresAt time.Time
}

// sessionWire is Session in the cookie (short keys, Unix seconds; the
// expiry is the envelope's).
type sessionWire struct {
	ID       string   `json:"sid"`
	Identity string   `json:"sub"`
	Licenses []string `json:"lic,omitempty"`
	Ref      string   `json:"ref,omitempty"`
	IssuedAt int64    `json:"iat"`
}

// Start begins a new session for identity with the licences its sign-in
// proved and sets its cookie. The id is always new, so a session id an
// attacker planted before sign-in (fixation) is never carried over. It
// also drops the sign-in state, which is spent.
func (s *Sessions) Start(w http.ResponseWriter, r *http.Request, identity string, licenses []string) (Session, error) {
	return s.start(w, r, identity, licenses, "")
}

// StartRef is Start for a sign-in that proved more licences than a cookie
// holds: the caller kept them (for the session's TTL) and ref names them.
func (s *Sessions) StartRef(w http.ResponseWriter, r *http.Request, identity, ref string) (Session, error) {
	return s.start(w, r, identity, nil, ref)
}

// TTL is how long a session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

func (s *Sessions) start(w http.ResponseWriter, r *http.Request, identity string, licenses []string, ref string) (Session, error) {
	now := s.now()
	sess := Session{
		ID:        randomID(),
		Identity:  identity,
		Licenses:  licenses,
		Ref:       ref,
		IssuedAt:  now.Truncate(time.Second),
		ExpiresAt: now.Add(s.ttl).Truncate(time.Second),
	}
	wire := sessionWire{ID: sess.ID, Identity: identity, Licenses: licenses, Ref: ref, IssuedAt: sess.IssuedAt.Unix()}
	if err := s.session.write(w, r, wire, sess.ExpiresAt); err != nil {
		return Session{}, fmt.Errorf("starting session: %w", err)
	}
	s.signIn.clear(w, r)
	return sess, nil
}

// Read returns the request's session, or false when it has none that is
// valid (absent, tampered, sealed under another secret or name, expired).
func (s *Sessions) Read(r *http.Request) (Session, bool) {
	var wire sessionWire
	exp, ok := s.session.read(r, &wire)
	if !ok || wire.ID == "" {
		return Session{}, false
	}
	return Session{
		ID: wire.ID, Identity: wire.Identity, Licenses: wire.Licenses, Ref: wire.Ref,
		IssuedAt: time.Unix(wire.IssuedAt, 0), ExpiresAt: exp,
	}, true
}

// End signs out: the browser drops the cookie. (A copy of the cookie kept
// elsewhere stays valid until its expiry: sealed cookies have no server
// side to revoke; short TTLs bound that.)
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) {
	s.session.clear(w, r)
}

// CSRFToken is the token every form of sess carries in CSRFField.
func (s *Sessions) CSRFToken(sess Session) string {
	return s.csrf.Token("session", sess.ID)
}

// Verify checks a state-changing request of a signed-in person and returns
// their session: ErrNoSession without one, else CSRF.Verify's errors. A
// handler answers any error with a 403 page and changes nothing.
func (s *Sessions) Verify(r *http.Request) (Session, error) {
	sess, ok := s.Read(r)
	if !ok {
		return Session{}, ErrNoSession
	}
	if err := s.csrf.Verify(r, "session", sess.ID); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// randomID returns 128 random bits, URL-safe.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

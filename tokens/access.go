package tokens

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Leeway is the clock skew tolerated on exp and nbf (SPEC section 6).
const Leeway = 30 * time.Second

// Claims are an access token's claims (SPEC section 5). No purchase code,
// ever.
type Claims struct {
	Issuer       string `json:"iss"`
	Audience     string `json:"aud"` // product slug
	Subject      string `json:"sub"` // installation id
	License      string `json:"lic"`
	Domain       string `json:"dom"`
	Class        string `json:"cls"`
	Type         string `json:"typ,omitempty"`
	SupportUntil int64  `json:"sup,omitempty"`
	Generation   int64  `json:"gen"`
	// Entitlements are what the installation may use when the token was
	// issued (SPEC section 14): its product's and its add-ons'.
	Entitlements []string         `json:"ent,omitempty"`
	ID           string           `json:"jti"`
	IssuedAt     *jwt.NumericDate `json:"iat"`
	NotBefore    *jwt.NumericDate `json:"nbf"`
	ExpiresAt    *jwt.NumericDate `json:"exp"`
}

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Issuer signs access tokens with the ring's current key.
type Issuer struct {
	ring   *Ring
	issuer string
	ttl    time.Duration
	now    func() time.Time
}

// NewIssuer returns an Issuer of tokens valid for ttl.
func NewIssuer(ring *Ring, issuer string, ttl time.Duration) *Issuer {
	return &Issuer{ring: ring, issuer: issuer, ttl: ttl, now: ring.now}
}

// TTL returns the lifetime of the tokens it issues.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue fills iss, jti, iat, nbf and exp and signs the claims.
func (i *Issuer) Issue(c Claims) (string, error) {
	kid, key, err := i.ring.signer()
	if err != nil {
		return "", err
	}
	now := i.now().Truncate(time.Second)
	c.Issuer = i.issuer
	c.ID = randomID(16)
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(i.ttl))
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, &c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing access token: %w", err)
	}
	return s, nil
}

// Verifier checks access tokens for a set of audiences (products). Build
// one per gate at provision time; it is safe for concurrent use.
type Verifier struct {
	ring   *Ring
	parser *jwt.Parser
	now    func() time.Time

	// verified remembers tokens whose signature and claims checked out,
	// until they expire: an installation presents the same token on every
	// request, and the signature check dominates the gate's cost.
	mu       sync.RWMutex
	verified map[string]*Claims
}

const (
	// maxVerified bounds the verified-token cache; when full it starts over.
	maxVerified = 100000
	// MaxTokenBytes bounds what is parsed: our tokens are under 1 KiB, and
	// decoding a header-sized blob on every request is work an attacker
	// chooses for us.
	MaxTokenBytes = 4096
)

// ErrInvalidToken wraps every reason a token is refused; the wrapped cause
// is for logs, not for clients.
var ErrInvalidToken = errors.New("invalid token")

// NewVerifier returns a Verifier accepting tokens from issuer whose aud is
// one of audiences. The algorithm is pinned to EdDSA: a token signed with
// "none" or an HMAC over the public key is refused before any key is used.
func NewVerifier(ring *Ring, issuer string, audiences []string) *Verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(ring.now),
	}
	if len(audiences) == 0 {
		// No product configured: no token can be for us.
		audiences = []string{"\x00no-audience"}
	}
	opts = append(opts, jwt.WithAudience(audiences...))
	return &Verifier{ring: ring, parser: jwt.NewParser(opts...), now: ring.now, verified: map[string]*Claims{}}
}

// Verify parses and checks a token, returning its claims.
//
// A token verified before is answered from memory until its exp (plus the
// leeway); the claims returned are shared and must not be modified.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	return v.VerifyAt(raw, v.now())
}

// VerifyAt is Verify with the remembered tokens checked at now, a time
// the caller read from the ring's clock (the gate reads the clock once per
// request). A token not remembered is checked on the ring's clock.
func (v *Verifier) VerifyAt(raw string, now time.Time) (*Claims, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: %d bytes, longer than any token we issue", ErrInvalidToken, len(raw))
	}
	if c := v.remembered(raw, now); c != nil {
		return c, nil
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(raw, &c, v.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.License == "" {
		return nil, fmt.Errorf("%w: missing sub or lic", ErrInvalidToken)
	}
	v.remember(raw, &c)
	return &c, nil
}

func (v *Verifier) remembered(raw string, now time.Time) *Claims {
	v.mu.RLock()
	c, ok := v.verified[raw]
	v.mu.RUnlock()
	if !ok {
		return nil
	}
	if !now.Before(c.ExpiresAt.Add(Leeway)) {
		v.mu.Lock()
		delete(v.verified, raw)
		v.mu.Unlock()
		return nil
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-Leeway)) {
		return nil // the clock went back: check it afresh
	}
	return c
}

func (v *Verifier) remember(raw string, c *Claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= maxVerified {
		v.verified = map[string]*Claims{}
	}
	v.verified[raw] = c
}

func (v *Verifier) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("no kid in header")
	}
	k, ok := v.ring.publicKeyOrReload(kid)
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", clip(kid, 64))
	}
	return k, nil
}

// Name returns the iss claim it sets.
func (i *Issuer) Name() string { return i.issuer }

// clip shortens an attacker-chosen string before it reaches a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Package upstreams defines how the gateway asks a source (a marketplace's
// API, or the author's own key list) about a licence key, and the one
// verdict every source answers with. Only a Valid or Invalid verdict may
// change anything; an Unknown one (outage, rate limit, an answer that
// cannot be classified) must never hurt a buyer. One sub-package per
// source holds its adapter.
//
// Around every remote source the app puts a Resilient wrapper, split by
// concern: budget.go (the rate budget, spent per request by the adapter's
// Client, and the Retry-After pause), breaker.go (the circuit breaker),
// negative.go (cached definitive answers), resilience.go (timeout,
// concurrency bound, coalescing, retries, and the order of all of these)
// and recheck.go (the background recheck's side-effect-free call, with its
// own share of the budget).
package upstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Outcome classifies an answer.
type Outcome int

const (
	// Unknown: no usable answer; nothing may change because of it.
	Unknown Outcome = iota
	// Valid: the key is a licence in good standing.
	Valid
	// Invalid: the source definitively said no.
	Invalid
)

func (o Outcome) String() string {
	switch o {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	default:
		return "unknown"
	}
}

// Reason says why a key is Invalid.
type Reason string

// Reasons a source may give.
const (
	NotFound         Reason = "not_found"
	Revoked          Reason = "revoked"
	Refunded         Reason = "refunded"
	Expired          Reason = "expired"
	Disabled         Reason = "disabled"
	Suspended        Reason = "suspended"
	WrongProduct     Reason = "wrong_product"
	DomainNotAllowed Reason = "domain_not_allowed"
)

// Record is what a source knows about a valid licence, mapped to the
// gateway's terms.
type Record struct {
	Product          string // product slug (mapped from the source's item id, slug or name)
	Type             string // e.g. regular, extended, developer; never empty from a built-in source (DefaultType)
	LicensedTo       string
	ExpiresAt        *time.Time
	SupportUntil     *time.Time
	Retired          bool
	ActivationsLimit int // 0: the source sets none; the product's applies
	// VendorID is the vendor's own id of the licence, when the source
	// reads licences by id on a recheck (Keygen's licence id). The store
	// keeps it and hands it back in RecheckRequest.VendorID. Empty: none.
	VendorID string
	// Refs are the vendor's other ids of the purchase (its order, sale,
	// subscription or licence id) that a store's webhook may name instead
	// of the key (SPEC section 7): the store indexes them, so that a hook
	// finds its licence. Not secrets; empty when the answer names none.
	Refs []VendorID
	// Email is the buyer's e-mail address, when the source reports it
	// (Lemon Squeezy, Gumroad, Digital Downloads Pro, a static file's
	// email column): the portal's e-mail sign-in finds licences by it. The
	// store keeps it only as a keyed hash and sealed.
	Email string
}

// DefaultType is the licence type of a licence whose vendor names no tier
// (a product without variants, a Keygen source that cannot read policies).
const DefaultType = "regular"

// TypeName turns a vendor's tier name (a variant, a policy) into a licence
// type: lower-cased words joined by dashes, a trailing "license" or
// "licence" dropped, so "Extended License" reads "extended" as Envato's
// does and "Team Plan" reads "team-plan". A name that says nothing (empty,
// "Default") is DefaultType.
func TypeName(name string) string {
	words := strings.Fields(strings.ToLower(name))
	if n := len(words); n > 1 && (words[n-1] == "license" || words[n-1] == "licence") {
		words = words[:n-1]
	}
	t := strings.Join(words, "-")
	if t == "" || t == "default" {
		return DefaultType
	}
	return t
}

// Verdict is a source's answer about one key.
type Verdict struct {
	Outcome    Outcome
	Record     Record        // set when Valid
	Reason     Reason        // set when Invalid
	Cause      error         // set when Unknown
	RetryAfter time.Duration // when Unknown: how long the source asked us to wait, if it said
}

// ValidVerdict, InvalidVerdict and UnknownVerdict build verdicts.
func ValidVerdict(r Record) Verdict        { return Verdict{Outcome: Valid, Record: r} }
func InvalidVerdict(reason Reason) Verdict { return Verdict{Outcome: Invalid, Reason: reason} }
func UnknownVerdict(cause error) Verdict   { return Verdict{Outcome: Unknown, Cause: cause} }

// RecoverVerdict turns a panic in a source's Verify into an Unknown
// verdict: a bug in one adapter must not take the gateway down, nor decide
// anything. Resilient defers it around every call to a wrapped source.
func RecoverVerdict(source string, v *Verdict) {
	if p := recover(); p != nil {
		*v = UnknownVerdict(fmt.Errorf("%s: internal error: %v", source, p))
	}
}

// Prepare begins an HTTP source adapter's Verify: it returns the mappings
// to try for req (every one when req names no product) and req's key in
// src's canonical form, or else the cause of the Unknown verdict to answer
// without asking: a product named without a mapping (the author's
// configuration gap, wrapping unmapped), or a key src refuses (the gateway
// canonicalises first, so it never was a licence; it is not echoed).
func Prepare(src Source, products ProductMap, req Request, unmapped error) (ProductMap, string, error) {
	mappings := products.For(req.Product)
	if req.Product != "" && len(mappings) == 0 {
		return nil, "", fmt.Errorf("%s: %w %q", src.Name(), unmapped, req.Product)
	}
	key, err := src.CanonicalKey(req.Key)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src.Name(), err)
	}
	return mappings, key, nil
}

// Request is one verification question.
type Request struct {
	Key     string // canonical form, from the source's CanonicalKey
	Product string // product slug the buyer asked for; empty when not given
	Domain  string // normalised domain, for sources that check it
	IP      string
}

// Source is one place licence keys are verified.
type Source interface {
	// Name is the source's configured name (envato, static, ...).
	Name() string
	// CanonicalKey checks a key's format locally, with no I/O, and returns
	// the canonical form or an error wrapping ErrKeyFormat.
	CanonicalKey(key string) (string, error)
	// Verify asks the source about a key. It never returns an error:
	// failures are Unknown verdicts.
	Verify(ctx context.Context, req Request) Verdict
}

// Local is implemented by sources whose Verify does no network I/O (the
// author's own key list): asking them again costs nothing, so the gateway
// does so on every activation and sees edits at once.
type Local interface {
	Local() bool
}

// ErrKeyFormat wraps every local key-format refusal.
var ErrKeyFormat = errors.New("invalid key format")

// MaxKeyLength is a source's default bound on a key: a source's
// CanonicalKey checks keys with CleanKeyWithin(key, MaxKeyLength) unless
// its keys are longer and it declares its own bound (Keygen: MaxAnyKeyLength).
const MaxKeyLength = 256

// MaxAnyKeyLength is the longest key any source may declare: Keygen allows
// keys of up to 16 KiB (a signed key/<base64>.<signature> is some 500
// characters with ED25519, 750 with RSA).
const MaxAnyKeyLength = 16 << 10

// invisible are characters pasted along with a key that nobody typed.
const invisible = "\u200b\u200c\u200d\u2060\ufeff"

// CleanKey trims what surrounds a pasted key and refuses keys no source
// could accept: empty, longer than MaxAnyKeyLength, or holding non-ASCII
// characters (a dash or letter look-alike copied from a PDF or a chat) or
// controls. It is the gateway's check before it knows which source a key
// is for; each source's CanonicalKey then applies its own bound with
// CleanKeyWithin (MaxKeyLength unless it declares another).
func CleanKey(raw string) (string, error) { return CleanKeyWithin(raw, MaxAnyKeyLength) }

// CleanKeyWithin is CleanKey with a source's own bound on the length (at
// most MaxAnyKeyLength): MaxKeyLength for most sources.
func CleanKeyWithin(raw string, maxLen int) (string, error) {
	maxLen = min(maxLen, MaxAnyKeyLength)
	// trimming first would scan a huge body twice; what is far too long to
	// be a key even with spaces around it is refused at once
	if len(raw) > 2*maxLen+64 {
		return "", fmt.Errorf("%w: the licence key is longer than %d characters", ErrKeyFormat, maxLen)
	}
	key := strings.TrimFunc(raw, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(invisible, r)
	})
	if key == "" {
		return "", fmt.Errorf("%w: the licence key is empty", ErrKeyFormat)
	}
	if len(key) > maxLen {
		return "", fmt.Errorf("%w: the licence key is longer than %d characters", ErrKeyFormat, maxLen)
	}
	for _, r := range key {
		if r > unicode.MaxASCII {
			return "", fmt.Errorf("%w: the licence key contains the non-ASCII character %q, often a look-alike dash or letter pasted from a PDF or chat; please type the key again", ErrKeyFormat, r)
		}
		if r < 0x21 || r == 0x7f {
			return "", fmt.Errorf("%w: the licence key contains spaces or control characters", ErrKeyFormat)
		}
	}
	return key, nil
}

package upstreams

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// A store's webhook (SPEC 7, "Fresh without polling") is a hint, never the
// truth: a verified one names a licence, and the gateway rechecks that
// licence with the source's API before anything changes. This file holds
// what every vendor's check shares; each source package's hooks.go holds
// its vendor's signature check and "which licence" parse, pure functions of
// the request and a clock, so the future license_hooks handler only
// dispatches, bounds the body and queues.

// HookWindow is how far from now a signed send time may be: a delivery
// older (or, with a fast clock, newer) than this is refused as a replay.
const HookWindow = 5 * time.Minute

// MaxHookBody is the largest body a hook may have. The handler reads at
// most this much (a Shopify order with many lines is some tens of KiB);
// the vendors' checks refuse a longer body too, so that none of them
// depends on the caller for its bound.
const MaxHookBody = 1 << 20

// maxHookID bounds an identifier read from a hook: every vendor's ids are
// far shorter, and an id becomes a store look-up.
const maxHookID = 128

// maxHookEvent bounds an event name or topic.
const maxHookEvent = 100

// HookRequest is what a vendor's check reads of one webhook request.
type HookRequest struct {
	// Method is the request's method, as received ("POST").
	Method string
	// Target is the request-target the vendor addressed: path and query
	// as sent (Keygen signs it). In Caddy that is the RequestURI of the
	// original request (the http.Request under caddyhttp.OriginalRequestCtxKey),
	// not r.RequestURI: a rewrite, and so handle_path, sets r.RequestURI to
	// the rewritten path.
	Target string
	// Host is the host the vendor addressed (http.Request.Host); a port
	// is dropped where the vendor signs the host without it.
	Host string
	// PathToken is the path segment after the vendor's name, when its
	// route has one (Gumroad's secret token); empty otherwise.
	PathToken string
	// Header is the request's header.
	Header http.Header
	// Body is the raw body, exactly as received: every signature is over
	// these bytes. At most MaxHookBody.
	Body []byte
}

// Hook is what a verified store webhook names: a hint to recheck a licence.
type Hook struct {
	// Source is the source's name (lemonsqueezy, gumroad, ...).
	Source string
	// Event is the vendor's event name or topic (order_refunded,
	// license.suspended, orders/paid, refund, ...).
	Event string
	// DeliveryID is the vendor's id of this delivery, for replay
	// detection; empty when the vendor sends none.
	DeliveryID string
	// At is when the vendor says it sent the hook; zero when it says
	// nothing.
	At time.Time
	// Key is a licence key the hook names, cleaned by CleanKey but not
	// yet in the source's canonical form (Source.CanonicalKey); empty when
	// none. It is a secret: never log it (String leaves it out).
	Key string
	// VendorIDs are the vendor's other identifiers the hook names (order,
	// licence, sale, subscription), which the gateway may look licences up
	// by.
	VendorIDs []VendorID
	// Test is set when the vendor marks the hook as test-mode data (a
	// Lemon Squeezy test store, a Gumroad seller buying their own product,
	// a Shopify test order).
	Test bool
}

// VendorID is one identifier a hook names. The kind keeps ids of
// different things apart: at Lemon Squeezy, licence key 1 and order 1 are
// not the same purchase.
type VendorID struct {
	Kind string // one of the ID* kinds
	ID   string
}

// Kinds of VendorID.
const (
	IDLicence      = "license"      // the vendor's licence id (Lemon Squeezy license key id, Keygen license id)
	IDOrder        = "order"        // an order id (Lemon Squeezy, Shopify)
	IDSale         = "sale"         // a Gumroad sale id
	IDSubscription = "subscription" // a subscription id (Lemon Squeezy, Gumroad)
)

// String describes h without its key, so that logging a Hook never writes
// the licence key.
func (h Hook) String() string {
	var b strings.Builder
	b.WriteString(h.Source + " " + h.Event)
	if h.DeliveryID != "" {
		b.WriteString(" delivery=" + h.DeliveryID)
	}
	if h.Key != "" {
		b.WriteString(" key=[redacted]")
	}
	for _, id := range h.VendorIDs {
		b.WriteString(" " + id.Kind + "=" + id.ID)
	}
	if h.Test {
		b.WriteString(" test")
	}
	return b.String()
}

// Names says whether h names a licence: a key or a vendor id.
func (h Hook) Names() bool { return h.Key != "" || len(h.VendorIDs) > 0 }

// The errors a vendor's check returns, wrapped with the cause. Each tells
// the handler how to answer:
//
//   - ErrHookSignature, ErrHookStale: 401, nothing changes (a signature,
//     token or seller that does not hold; an authentic delivery sent too
//     long ago or a date that cannot be read);
//   - ErrHookMalformed: 400, the request was verified but cannot be read;
//   - ErrHookIgnored: 200, verified and read, but it names no licence
//     (an event kind that is not about one): the Hook returned with it
//     carries what was read, for metrics and replay bookkeeping.
//
// No message ever holds a secret, a signature or a licence key.
var (
	ErrHookSignature = errors.New("webhook signature does not hold")
	ErrHookStale     = errors.New("webhook is outside the time window")
	ErrHookMalformed = errors.New("malformed webhook")
	ErrHookIgnored   = errors.New("webhook names no licence")
)

// HookVerifier is one source's webhook check, built from its configured
// secret: Verify checks req's authenticity first (a refusal wraps
// ErrHookSignature or ErrHookStale), then reads which licence it names.
// now is the clock for the time window.
type HookVerifier interface {
	Verify(req HookRequest, now time.Time) (Hook, error)
}

// SecretEqual compares a secret that was sent with the configured one in
// time that depends on neither: both are hashed first, so not even the
// length of the configured secret shows in the timing.
func SecretEqual(sent, configured []byte) bool {
	a := sha256.Sum256(sent)
	b := sha256.Sum256(configured)
	return hmac.Equal(a[:], b[:])
}

// CheckHookTime refuses a send time farther than HookWindow from now.
func CheckHookTime(at, now time.Time) error {
	if d := now.Sub(at); d > HookWindow || d < -HookWindow {
		return ErrHookStale
	}
	return nil
}

// HookKey cleans a licence key read from a verified hook. A key no source
// could accept is dropped rather than refused: the vendor signed it, and
// the hook's other ids may still name the licence.
func HookKey(raw string) string {
	key, err := CleanKey(raw)
	if err != nil {
		return ""
	}
	return key
}

// AddVendorID appends the id of kind to ids when it can be one: non-empty,
// at most 128 characters of printable ASCII without spaces. Anything else
// is dropped, for the same reason as HookKey.
func AddVendorID(ids []VendorID, kind, id string) []VendorID {
	if id == "" || len(id) > maxHookID {
		return ids
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return ids
		}
	}
	return append(ids, VendorID{Kind: kind, ID: id})
}

// HookEvent checks an event name or topic read from a verified hook: it
// becomes a log field and a metric's neighbour, so it must be short,
// printable ASCII.
func HookEvent(name string) (string, bool) {
	if name == "" || len(name) > maxHookEvent {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return "", false
		}
	}
	return name, true
}

// HookID is an identifier in a hook's JSON, which vendors send as a string
// ("1") or a number (820982911946154508, past float64's exact integers).
// A number is kept digit for digit. Anything else (a fraction, a negative,
// a boolean, an object) reads as empty, so one odd field does not make the
// whole hook unreadable.
type HookID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *HookID) UnmarshalJSON(b []byte) error {
	*id = ""
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = HookID(s)
	case isDigits(b):
		*id = HookID(b)
	}
	return nil
}

// isDigits says whether b is a non-empty run of ASCII digits.
func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// DecodeHookJSON reads a verified hook's JSON body into v, refusing a body
// longer than MaxHookBody or that is not one JSON value.
func DecodeHookJSON(body []byte, v any) error {
	if len(body) > MaxHookBody {
		return errors.New("body is longer than the webhook bound")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return errors.New("body is not the expected JSON")
	}
	if dec.More() {
		return errors.New("body holds more than one JSON value")
	}
	return nil
}

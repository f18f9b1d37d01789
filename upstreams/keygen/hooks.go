package keygen

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Keygen webhooks (keygen.sh/docs/api/webhooks, keygen.sh/docs/api/signatures)
// are POSTs of a webhook-event object whose data.attributes.payload is the
// JSON of the resource, as a string. Each delivery is signed with the
// account's Ed25519 key in the style of the HTTP Signatures draft
// (draft-cavage-http-signatures):
//
//	Date: Wed, 09 Jun 2021 16:08:15 GMT
//	Digest: sha-256=<base64 SHA-256 of the body>
//	Keygen-Signature: keyid="<account>", algorithm="ed25519", signature="<base64>", headers="(request-target) host date digest"
//
// over the signing string
//
//	(request-target): post <path and query of the endpoint URL>
//	host: <host of the endpoint URL, without a port>
//	date: <the Date header>
//	digest: <the Digest header>
//
// joined by line feeds (SignatureMethods#generate_signing_data and
// WebhookWorker#perform in github.com/keygen-sh/keygen-api: the host is
// URI.parse(endpoint.url).host, which drops the port). Keygen signs each
// attempt afresh, retries included, so Date is the send time of this
// attempt, and a delivery older than upstreams.HookWindow is refused: the
// date is signed, so an old delivery cannot be replayed with a new one.
//
// Only ed25519 is accepted: it is Keygen's default, and the one whose key
// its dashboard shows (hex). An endpoint set to another algorithm is
// refused until it is set back.

// signedHeaders is the one list of signed headers accepted: what Keygen
// signs. A signature over fewer would leave the body or the date open.
const signedHeaders = "(request-target) host date digest"

// maxSignatureHeader bounds the Keygen-Signature header: Keygen's is some
// 200 characters.
const maxSignatureHeader = 1024

// licenceEvents are the events about a licence's standing (db/seeds.rb in
// keygen-api lists every event). Validations, check-ins, usage and
// machine events say nothing a recheck would see; they arrive on every
// use of a licence, and a recheck for each would spend the rate budget
// on nothing.
var licenceEvents = map[string]bool{
	"license.created":        true,
	"license.updated":        true,
	"license.deleted":        true,
	"license.expired":        true,
	"license.renewed":        true,
	"license.revoked":        true,
	"license.suspended":      true,
	"license.reinstated":     true,
	"license.policy.updated": true,
}

// Hooks checks Keygen webhooks against the account's Ed25519 public key.
type Hooks struct {
	key ed25519.PublicKey
}

// NewHooks builds the check for the account's Ed25519 public key, given
// hex-encoded as Keygen's dashboard shows it (Caddyfile
// webhook_public_key).
func NewHooks(publicKeyHex string) (*Hooks, error) {
	key, err := hex.DecodeString(strings.TrimSpace(publicKeyHex))
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("webhook_public_key: give the account's Ed25519 public key as %d hex digits, as Keygen's dashboard shows it", 2*ed25519.PublicKeySize)
	}
	return &Hooks{key: ed25519.PublicKey(key)}, nil
}

// Verify implements upstreams.HookVerifier: the digest, the signature,
// then the window, then which licence the event names. req.Target must
// be the request-target as Keygen sent it (see upstreams.HookRequest) and
// req.Host the host the endpoint URL names.
func (h *Hooks) Verify(req upstreams.HookRequest, now time.Time) (upstreams.Hook, error) {
	none := upstreams.Hook{Source: Name}
	if len(req.Body) > upstreams.MaxHookBody {
		return none, fmt.Errorf("%s: %w: body is longer than the webhook bound", Name, upstreams.ErrHookMalformed)
	}
	sig, err := parseSignature(req.Header.Get("Keygen-Signature"))
	if err != nil {
		return none, fmt.Errorf("%s: %w: %v", Name, upstreams.ErrHookSignature, err)
	}
	digest := headerOr(req.Header, "Digest", "Keygen-Digest")
	if err := checkDigest(digest, req.Body); err != nil {
		return none, fmt.Errorf("%s: %w: %v", Name, upstreams.ErrHookSignature, err)
	}
	date := headerOr(req.Header, "Date", "Keygen-Date")
	if !ed25519.Verify(h.key, []byte(signingString(req, date, digest)), sig) {
		return none, fmt.Errorf("%s: %w: Keygen-Signature does not verify with the configured public key", Name, upstreams.ErrHookSignature)
	}
	at, err := http.ParseTime(date)
	if err != nil {
		return none, fmt.Errorf("%s: %w: the signed Date cannot be read", Name, upstreams.ErrHookStale)
	}
	if err := upstreams.CheckHookTime(at, now); err != nil {
		return none, fmt.Errorf("%s: %w: signed at %s", Name, err, at.UTC().Format(time.RFC3339))
	}
	hook, err := ParseHook(req.Body)
	hook.At = at
	return hook, err
}

// headerOr is the first of the named headers that is present. Keygen
// sends Keygen-Date and Keygen-Digest with the same values as Date and
// Digest, for a proxy that drops or rewrites those.
func headerOr(h http.Header, names ...string) string {
	for _, name := range names {
		if v := h.Get(name); v != "" {
			return v
		}
	}
	return ""
}

// parseSignature reads a Keygen-Signature header and returns the
// signature, after checking it is one this package can verify.
func parseSignature(header string) ([]byte, error) {
	if header == "" {
		return nil, errors.New("no Keygen-Signature header")
	}
	if len(header) > maxSignatureHeader {
		return nil, errors.New("the Keygen-Signature header is too long")
	}
	params, err := signatureParams(header)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(params["algorithm"], "ed25519") {
		return nil, errors.New(`Keygen-Signature is not algorithm="ed25519"; set the endpoint's signature algorithm to ed25519`)
	}
	if strings.Join(strings.Fields(params["headers"]), " ") != signedHeaders {
		return nil, errors.New(`Keygen-Signature does not cover "` + signedHeaders + `"`)
	}
	sig, err := base64.StdEncoding.DecodeString(params["signature"])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("Keygen-Signature's signature is not a base64 Ed25519 signature")
	}
	return sig, nil
}

// signatureParams splits `name="value", ...` into a map with lower-case
// names. A parameter without quotes, or given twice, is refused: a
// signature header is never read two ways.
func signatureParams(header string) (map[string]string, error) {
	params := map[string]string{}
	for _, part := range strings.Split(header, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
			return nil, errors.New("the Keygen-Signature header is not a list of name=\"value\" parameters")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if _, dup := params[name]; dup {
			return nil, errors.New("the Keygen-Signature header gives a parameter twice")
		}
		params[name] = value[1 : len(value)-1]
	}
	return params, nil
}

// checkDigest compares the Digest header with the SHA-256 of the body.
// The algorithm name is case-insensitive (RFC 3230); Keygen writes
// "sha-256".
func checkDigest(header string, body []byte) error {
	const prefix = "sha-256="
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return errors.New("no sha-256 Digest header")
	}
	sent, err := base64.StdEncoding.DecodeString(header[len(prefix):])
	sum := sha256.Sum256(body)
	if err != nil || subtle.ConstantTimeCompare(sent, sum[:]) != 1 {
		return errors.New("the Digest header does not match the body")
	}
	return nil
}

// signingString is what Keygen signs for req, with its Date and Digest
// header values as sent.
func signingString(req upstreams.HookRequest, date, digest string) string {
	target := req.Target
	if target == "" {
		target = "/"
	}
	return "(request-target): " + strings.ToLower(req.Method) + " " + target + "\n" +
		"host: " + hostWithoutPort(req.Host) + "\n" +
		"date: " + date + "\n" +
		"digest: " + digest
}

// hostWithoutPort drops a port from a Host header value, as Keygen signs
// the endpoint URL's host without one. An IPv6 literal keeps its
// brackets, as Ruby's URI#host keeps them.
func hostWithoutPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			return host[:end+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		return host[:i]
	}
	return host
}

// eventBody is the part of a webhook event the gateway reads.
type eventBody struct {
	Data struct {
		ID         upstreams.HookID `json:"id"`
		Type       string           `json:"type"`
		Attributes struct {
			Event   string  `json:"event"`
			Payload *string `json:"payload"`
		} `json:"attributes"`
	} `json:"data"`
}

// licencePayload is the part of a license.* event's payload read.
type licencePayload struct {
	Data *struct {
		ID         upstreams.HookID `json:"id"`
		Type       string           `json:"type"`
		Attributes struct {
			Key string `json:"key"`
		} `json:"attributes"`
	} `json:"data"`
}

// ParseHook reads which licence a verified Keygen webhook event names:
// for an event about a licence's standing, the licence's id and key from
// the payload. The event's id is the delivery id: Keygen signs every
// attempt afresh but keeps the event's id across its own retries. Other
// events are ErrHookIgnored.
func ParseHook(body []byte) (upstreams.Hook, error) {
	hook := upstreams.Hook{Source: Name}
	var ev eventBody
	if err := upstreams.DecodeHookJSON(body, &ev); err != nil {
		return hook, fmt.Errorf("%s: %w: %v", Name, upstreams.ErrHookMalformed, err)
	}
	if ev.Data.Type != "webhook-events" {
		return hook, fmt.Errorf("%s: %w: not a webhook-events object", Name, upstreams.ErrHookMalformed)
	}
	event, ok := upstreams.HookEvent(ev.Data.Attributes.Event)
	if !ok {
		return hook, fmt.Errorf("%s: %w: data.attributes.event is missing or not an event name", Name, upstreams.ErrHookMalformed)
	}
	hook.Event = event
	if ids := upstreams.AddVendorID(nil, "", string(ev.Data.ID)); len(ids) == 1 {
		hook.DeliveryID = ids[0].ID
	}
	if !licenceEvents[event] {
		return hook, fmt.Errorf("%s: %w: event %s", Name, upstreams.ErrHookIgnored, event)
	}
	if ev.Data.Attributes.Payload == nil {
		return hook, fmt.Errorf("%s: %w: event %s has no payload", Name, upstreams.ErrHookMalformed, event)
	}
	var p licencePayload
	if err := upstreams.DecodeHookJSON([]byte(*ev.Data.Attributes.Payload), &p); err != nil {
		return hook, fmt.Errorf("%s: %w: payload: %v", Name, upstreams.ErrHookMalformed, err)
	}
	if p.Data == nil || p.Data.Type != "licenses" {
		return hook, fmt.Errorf("%s: %w: the %s payload is not a licence", Name, upstreams.ErrHookIgnored, event)
	}
	hook.Key = upstreams.HookKey(p.Data.Attributes.Key)
	hook.VendorIDs = upstreams.AddVendorID(nil, upstreams.IDLicence, string(p.Data.ID))
	if !hook.Names() {
		return hook, fmt.Errorf("%s: %w: the %s payload holds no licence id or key", Name, upstreams.ErrHookIgnored, event)
	}
	return hook, nil
}

// Interface guard.
var _ upstreams.HookVerifier = (*Hooks)(nil)

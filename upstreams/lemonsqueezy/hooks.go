package lemonsqueezy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Lemon Squeezy webhooks (docs.lemonsqueezy.com/help/webhooks): a POST of
// a JSON:API resource, {"meta":{"event_name":...},"data":{...}}, signed in
// X-Signature with the hex HMAC-SHA256 of the raw body under the signing
// secret the author typed when creating the webhook (6 to 40 characters).
//
// Lemon Squeezy sends no timestamp and no delivery id: the signature
// covers the body alone, so a captured delivery verifies again forever,
// and there is no time window to enforce. meta.webhook_id names the
// webhook's configuration, the same on every delivery, not a delivery. A
// replay can at most cause one more recheck of a licence it already named.

// minHookSecret is Lemon Squeezy's own minimum for a signing secret.
const minHookSecret = 6

// Hooks checks Lemon Squeezy webhooks against the signing secret.
type Hooks struct {
	secret []byte
}

// NewHooks builds the check for the webhook signing secret (Caddyfile
// webhook_secret).
func NewHooks(secret string) (*Hooks, error) {
	if len(secret) < minHookSecret {
		return nil, fmt.Errorf("webhook_secret: Lemon Squeezy signing secrets have at least %d characters", minHookSecret)
	}
	return &Hooks{secret: []byte(secret)}, nil
}

// Verify implements upstreams.HookVerifier. now is unused: Lemon Squeezy
// says nothing about when it sent a hook.
func (h *Hooks) Verify(req upstreams.HookRequest, _ time.Time) (upstreams.Hook, error) {
	if err := h.checkSignature(req); err != nil {
		return upstreams.Hook{Source: Name}, err
	}
	return ParseHook(req.Body)
}

// checkSignature compares X-Signature with the HMAC of the raw body.
func (h *Hooks) checkSignature(req upstreams.HookRequest) error {
	if len(req.Body) > upstreams.MaxHookBody {
		return fmt.Errorf("%s: %w: body is longer than the webhook bound", Name, upstreams.ErrHookMalformed)
	}
	sent := strings.TrimSpace(req.Header.Get("X-Signature"))
	if sent == "" {
		return fmt.Errorf("%s: %w: no X-Signature header", Name, upstreams.ErrHookSignature)
	}
	// hex is case-insensitive; a value that is not hex compares unequal
	got, err := hex.DecodeString(sent)
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(req.Body)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%s: %w: X-Signature does not match the body", Name, upstreams.ErrHookSignature)
	}
	return nil
}

// hookBody is the part of a webhook body the gateway reads.
type hookBody struct {
	Meta struct {
		EventName string `json:"event_name"`
		TestMode  bool   `json:"test_mode"`
	} `json:"meta"`
	Data struct {
		Type       string           `json:"type"`
		ID         upstreams.HookID `json:"id"`
		Attributes struct {
			Key            string           `json:"key"`             // license-keys
			OrderID        upstreams.HookID `json:"order_id"`        // license-keys, subscriptions
			SubscriptionID upstreams.HookID `json:"subscription_id"` // subscription-invoices
		} `json:"attributes"`
	} `json:"data"`
}

// ParseHook reads which licence a verified Lemon Squeezy webhook names.
// The data object's type says what it is (event types:
// docs.lemonsqueezy.com/help/webhooks/event-types):
//
//   - license_key_created, license_key_updated: a license-keys object,
//     naming the key, its id and its order;
//   - order_refunded: an orders object, naming the order (a refund
//     disables the order's keys);
//   - subscription_*: a subscriptions object (the subscription and its
//     order) or, for subscription_payment_*, a subscription-invoices
//     object (the subscription).
//
// Any other event (order_created, affiliate_activated, ...) names no
// licence the gateway already has: ErrHookIgnored.
func ParseHook(body []byte) (upstreams.Hook, error) {
	hook := upstreams.Hook{Source: Name}
	var b hookBody
	if err := upstreams.DecodeHookJSON(body, &b); err != nil {
		return hook, fmt.Errorf("%s: %w: %v", Name, upstreams.ErrHookMalformed, err)
	}
	event, ok := upstreams.HookEvent(b.Meta.EventName)
	if !ok {
		return hook, fmt.Errorf("%s: %w: meta.event_name is missing or not an event name", Name, upstreams.ErrHookMalformed)
	}
	hook.Event, hook.Test = event, b.Meta.TestMode
	if !namesLicence(event) {
		return hook, fmt.Errorf("%s: %w: event %s", Name, upstreams.ErrHookIgnored, event)
	}
	readIDs(&hook, b)
	if !hook.Names() {
		return hook, fmt.Errorf("%s: %w: event %s holds no key or id", Name, upstreams.ErrHookIgnored, event)
	}
	return hook, nil
}

// namesLicence says whether an event is about a licence the gateway may
// already hold.
func namesLicence(event string) bool {
	switch {
	case event == "license_key_created", event == "license_key_updated", event == "order_refunded":
		return true
	default:
		return strings.HasPrefix(event, "subscription_")
	}
}

// readIDs copies the key and ids b's data object holds, by its type.
func readIDs(hook *upstreams.Hook, b hookBody) {
	a := b.Data.Attributes
	switch b.Data.Type {
	case "license-keys":
		hook.Key = upstreams.HookKey(a.Key)
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDLicence, string(b.Data.ID))
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDOrder, string(a.OrderID))
	case "orders":
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDOrder, string(b.Data.ID))
	case "subscriptions":
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDSubscription, string(b.Data.ID))
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDOrder, string(a.OrderID))
	case "subscription-invoices":
		hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDSubscription, string(a.SubscriptionID))
	}
}

// Interface guard.
var _ upstreams.HookVerifier = (*Hooks)(nil)

package digitaldownloads

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Digital Downloads Pro has no webhooks of its own; the Shopify store it
// runs in has (shopify.dev/docs/apps/build/webhooks). A delivery is a POST
// of the topic's JSON resource with:
//
//	X-Shopify-Topic: orders/paid
//	X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>
//	X-Shopify-Webhook-Id, X-Shopify-Event-Id, X-Shopify-Triggered-At, ...
//
// signed with the secret of the app that subscribed, or, for a webhook
// the merchant added under Settings > Notifications > Webhooks, with the
// key that page shows. Either is the source's shopify_webhook_secret.
//
// The HMAC covers the body only. The headers are not signed: the topic,
// the ids and X-Shopify-Triggered-At could be changed by whoever replays
// a captured body. So the window on X-Shopify-Triggered-At (applied when
// it is present, as SPEC 7 asks of every vendor that sends a time) keeps
// out only honest late deliveries, and the delivery id stops only honest
// duplicates. What keeps a replay harmless is that a hook is a hint: it
// costs one recheck of an order the signed body names.
//
// The delivery id is X-Shopify-Event-Id, which Shopify's guide to
// duplicates names as the key ("the same value across more than one
// webhook indicates a duplicate", shopify.dev/docs/apps/build/webhooks/
// ignore-duplicates), and X-Shopify-Webhook-Id when that is absent.

// minHookSecret is the shortest secret accepted: Shopify's app client
// secrets and notification keys are far longer, and a short one is a
// configuration mistake.
const minHookSecret = 16

// orderTopics are the topics that name an order whose licence keys the
// gateway may already hold: a payment, a cancellation, an edit, a deletion
// or a refund. orders/create is a new order, with keys nobody has used.
var orderTopics = map[string]bool{
	"orders/paid":      true,
	"orders/cancelled": true,
	"orders/updated":   true,
	"orders/delete":    true,
	"refunds/create":   true,
}

// Hooks checks Shopify webhooks against the webhook secret.
type Hooks struct {
	secret []byte
}

// NewHooks builds the check for the Shopify webhook secret (Caddyfile
// shopify_webhook_secret).
func NewHooks(secret string) (*Hooks, error) {
	if len(secret) < minHookSecret {
		return nil, fmt.Errorf("shopify_webhook_secret: give the app's client secret or the store's webhook signing key (%d characters or more)", minHookSecret)
	}
	return &Hooks{secret: []byte(secret)}, nil
}

// Verify implements upstreams.HookVerifier.
func (h *Hooks) Verify(req upstreams.HookRequest, now time.Time) (upstreams.Hook, error) {
	none := upstreams.Hook{Source: name}
	if err := h.checkSignature(req); err != nil {
		return none, err
	}
	at, err := triggeredAt(req.Header.Get("X-Shopify-Triggered-At"), now)
	if err != nil {
		return none, err
	}
	hook, err := ParseHook(req.Header.Get("X-Shopify-Topic"), req.Body)
	hook.At = at
	hook.DeliveryID = deliveryID(req.Header.Get("X-Shopify-Event-Id"), req.Header.Get("X-Shopify-Webhook-Id"))
	return hook, err
}

// checkSignature compares X-Shopify-Hmac-Sha256 with the HMAC of the raw
// body.
func (h *Hooks) checkSignature(req upstreams.HookRequest) error {
	if len(req.Body) > upstreams.MaxHookBody {
		return fmt.Errorf("%s: %w: body is longer than the webhook bound", name, upstreams.ErrHookMalformed)
	}
	sent := strings.TrimSpace(req.Header.Get("X-Shopify-Hmac-Sha256"))
	if sent == "" {
		return fmt.Errorf("%s: %w: no X-Shopify-Hmac-Sha256 header", name, upstreams.ErrHookSignature)
	}
	got, err := base64.StdEncoding.DecodeString(sent)
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(req.Body)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%s: %w: X-Shopify-Hmac-Sha256 does not match the body", name, upstreams.ErrHookSignature)
	}
	return nil
}

// triggeredAt reads X-Shopify-Triggered-At and refuses a time outside the
// window; without the header, the zero time and no window.
func triggeredAt(header string, now time.Time) (time.Time, error) {
	if header == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(header))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w: X-Shopify-Triggered-At cannot be read", name, upstreams.ErrHookStale)
	}
	if err := upstreams.CheckHookTime(at, now); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w: triggered at %s", name, err, at.UTC().Format(time.RFC3339))
	}
	return at, nil
}

// deliveryID is the first id that can be one.
func deliveryID(ids ...string) string {
	for _, id := range ids {
		if v := upstreams.AddVendorID(nil, "", strings.TrimSpace(id)); len(v) == 1 {
			return v[0].ID
		}
	}
	return ""
}

// orderBody is the part of a topic's resource read: an order (orders/*)
// is its id; a refund (refunds/create) names its order_id.
type orderBody struct {
	ID      upstreams.HookID `json:"id"`
	OrderID upstreams.HookID `json:"order_id"`
	Test    bool             `json:"test"`
}

// ParseHook reads which order a verified Shopify webhook of topic names.
// Digital Downloads Pro keeps each key's Shopify order (order.shopify_id
// in its verify answer), so the order id is what the gateway can look the
// licence up by. Topics that are not about an existing order are
// ErrHookIgnored.
func ParseHook(topic string, body []byte) (upstreams.Hook, error) {
	hook := upstreams.Hook{Source: name}
	event, ok := upstreams.HookEvent(strings.TrimSpace(topic))
	if !ok {
		return hook, fmt.Errorf("%s: %w: X-Shopify-Topic is missing or not a topic", name, upstreams.ErrHookMalformed)
	}
	hook.Event = event
	if !orderTopics[event] {
		return hook, fmt.Errorf("%s: %w: topic %s", name, upstreams.ErrHookIgnored, event)
	}
	var b orderBody
	if err := upstreams.DecodeHookJSON(body, &b); err != nil {
		return hook, fmt.Errorf("%s: %w: %v", name, upstreams.ErrHookMalformed, err)
	}
	order := b.ID
	if event == "refunds/create" {
		order = b.OrderID // b.ID is the refund's
	}
	hook.Test = b.Test
	hook.VendorIDs = upstreams.AddVendorID(nil, upstreams.IDOrder, string(order))
	if !hook.Names() {
		return hook, fmt.Errorf("%s: %w: the %s body holds no order id", name, upstreams.ErrHookIgnored, event)
	}
	return hook, nil
}

// Interface guard.
var _ upstreams.HookVerifier = (*Hooks)(nil)

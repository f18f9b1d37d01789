package gumroad

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Gumroad Ping (gumroad.com/ping) is an application/x-www-form-urlencoded
// POST of the sale's fields to the URL in the seller's settings, and the
// same body, with resource_name, goes to each URL subscribed through the
// API's resource subscriptions (sale, refund, dispute, dispute_won,
// cancellation, subscription_updated, subscription_ended,
// subscription_restarted).
//
// Gumroad signs nothing. The URL the author gives Gumroad carries a secret
// path token (…/gumroad/{webhook_path_token}), compared in constant time,
// and the ping's seller_id must be the configured seller's: a ping for
// another seller (a token leaked to, or reused by, someone else) is
// refused. The payloads of the subscription resources (cancellation,
// subscription_*) carry no seller_id (Subscription::PingNotification in
// Gumroad's source): for those alone the token is the whole check, and a
// seller_id they do carry must still match. Sales, refunds and disputes
// are the sale's payload: without the seller's id they are refused.
//
// Gumroad sends no delivery id and no send time: sale_timestamp is when
// the sale was made, a refund's ping repeats it, so it is no clock for a
// window. A ping's retry (a non-2xx answer is retried for some hours)
// repeats the body; its replay can at most cause one more recheck.

// minPathToken is the shortest path token accepted: the token is all that
// authenticates a ping, so it must not be guessable.
const minPathToken = 16

// pingResources are the resource names whose pings are about a purchase,
// and so name its licence. A ping from the seller's settings URL has no
// resource_name: it is a sale.
var pingResources = map[string]bool{
	"sale": true, "refund": true, "dispute": true, "dispute_won": true,
	"cancellation": true, "subscription_updated": true, "subscription_ended": true, "subscription_restarted": true,
}

// Hooks checks Gumroad pings against the configured path token and seller.
type Hooks struct {
	token  []byte
	seller []byte
}

// NewHooks builds the check for the secret path token (Caddyfile
// webhook_path_token) and the seller's id (Caddyfile seller_id, the
// seller_id of the account's pings and sales).
func NewHooks(pathToken, sellerID string) (*Hooks, error) {
	if len(pathToken) < minPathToken || strings.ContainsAny(pathToken, "/?#%") || upstreams.HasUnprintable(pathToken) {
		return nil, fmt.Errorf("webhook_path_token: give at least %d printable characters that can stand in a URL path segment", minPathToken)
	}
	sellerID = strings.TrimSpace(sellerID)
	if sellerID == "" || upstreams.HasUnprintable(sellerID) {
		return nil, errors.New("seller_id: give the seller_id of the account's Gumroad pings")
	}
	return &Hooks{token: []byte(pathToken), seller: []byte(sellerID)}, nil
}

// Verify implements upstreams.HookVerifier. now is unused: Gumroad says
// nothing about when it sent a ping.
func (h *Hooks) Verify(req upstreams.HookRequest, _ time.Time) (upstreams.Hook, error) {
	none := upstreams.Hook{Source: Name}
	if len(req.Body) > upstreams.MaxHookBody {
		return none, fmt.Errorf("%s: %w: body is longer than the webhook bound", Name, upstreams.ErrHookMalformed)
	}
	if !upstreams.SecretEqual([]byte(req.PathToken), h.token) {
		return none, fmt.Errorf("%s: %w: the path token is not the configured webhook_path_token", Name, upstreams.ErrHookSignature)
	}
	form, err := parseForm(req.Body)
	if err != nil {
		return none, err
	}
	// checked after the form is read, since the seller is in it; the
	// token already held, so a body that cannot be read is a 400
	if !h.sellerHolds(form) {
		return none, fmt.Errorf("%s: %w: the ping's seller_id is not the configured seller_id", Name, upstreams.ErrHookSignature)
	}
	return hookOf(form)
}

// subscriptionResources are the resources whose payload carries no
// seller_id.
var subscriptionResources = map[string]bool{
	"cancellation": true, "subscription_updated": true, "subscription_ended": true, "subscription_restarted": true,
}

// sellerHolds says whether a ping's seller is the configured one: its
// seller_id when it sends one, which only a subscription resource's ping
// may leave out.
func (h *Hooks) sellerHolds(form url.Values) bool {
	if _, sent := form["seller_id"]; !sent && subscriptionResources[form.Get("resource_name")] {
		return true
	}
	return upstreams.SecretEqual([]byte(form.Get("seller_id")), h.seller)
}

// ParseHook reads which licence a Gumroad ping names, without the checks
// of Verify: the licence key when the product has licences, the sale and
// the subscription. A ping of a resource that is not about a purchase,
// or that names nothing, is ErrHookIgnored.
func ParseHook(body []byte) (upstreams.Hook, error) {
	form, err := parseForm(body)
	if err != nil {
		return upstreams.Hook{Source: Name}, err
	}
	return hookOf(form)
}

// parseForm reads a ping's form body.
func parseForm(body []byte) (url.Values, error) {
	if len(body) > upstreams.MaxHookBody {
		return nil, fmt.Errorf("%s: %w: body is longer than the webhook bound", Name, upstreams.ErrHookMalformed)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// the error quotes the offending part of the body, which may
		// hold the licence key: it is not passed on
		return nil, fmt.Errorf("%s: %w: body is not a form", Name, upstreams.ErrHookMalformed)
	}
	return form, nil
}

// hookOf reads the hook a ping's form names.
func hookOf(form url.Values) (upstreams.Hook, error) {
	hook := upstreams.Hook{Source: Name, Event: "sale", Test: form.Get("test") == "true"}
	if name := form.Get("resource_name"); name != "" {
		event, ok := upstreams.HookEvent(name)
		if !ok {
			return hook, fmt.Errorf("%s: %w: resource_name is not a resource name", Name, upstreams.ErrHookMalformed)
		}
		hook.Event = event
	}
	if !pingResources[hook.Event] {
		return hook, fmt.Errorf("%s: %w: resource %s", Name, upstreams.ErrHookIgnored, hook.Event)
	}
	hook.Key = upstreams.HookKey(form.Get("license_key"))
	hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDSale, form.Get("sale_id"))
	hook.VendorIDs = upstreams.AddVendorID(hook.VendorIDs, upstreams.IDSubscription, form.Get("subscription_id"))
	if !hook.Names() {
		return hook, fmt.Errorf("%s: %w: the %s ping holds no licence key, sale or subscription", Name, upstreams.ErrHookIgnored, hook.Event)
	}
	return hook, nil
}

// Interface guard.
var _ upstreams.HookVerifier = (*Hooks)(nil)

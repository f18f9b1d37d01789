// Package digitaldownloads verifies licence keys sold through Digital
// Downloads Pro, a Shopify app that hands each buyer a key from one of the
// author's licence key lists (seeds/002):
//
//	POST {base}/v1/licenses/verify
//	license_key_list_token=...&license_key=...&increment_uses_count=false
//
// A 404 means the key is not in that list; a 200 carries "valid" and the
// facts behind it (disabled_at, assigned_at, the order's status). The app
// counts every verification as a "use" unless told not to, and the author
// may enforce limits on that counter, so the gateway always sends
// increment_uses_count=false: a background recheck must never spend a
// buyer's uses.
//
// Each of our products maps to a list token (Caddyfile ddp_list_token); the
// token is also the only credential the API knows.
package digitaldownloads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/licensegate/licensegate/upstreams"
)

// name is the source's name in configuration and errors.
const name = "digitaldownloads"

// verifyPath is appended to the base URL.
const verifyPath = "/v1/licenses/verify"

// ErrNoListToken means a product has no list token configured for this
// source: the gateway's configuration is incomplete, the buyer's key is not
// at fault.
var ErrNoListToken = errors.New(name + ": no ddp_list_token is configured for the product")

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.digitaldownloadsapp.com
	// (required; Caddyfile base_url).
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products maps our product slugs to licence key list tokens
	// (Caddyfile, per product: ddp_list_token). Without a product in the
	// request, the lists are asked in this order.
	Products upstreams.ProductMap
}

// Source verifies keys with the Digital Downloads Pro API.
type Source struct {
	endpoint string
	client   upstreams.Client
	products upstreams.ProductMap
}

// New checks cfg and returns the adapter.
func New(cfg Config) (*Source, error) {
	base, err := upstreams.ParseBaseURL(cfg.BaseURL) // a store in a sub-directory keeps its path
	if err != nil {
		return nil, err
	}
	// Not ProductMap.Check: one list may serve several products, and the
	// token is a credential its messages must not quote.
	for _, p := range cfg.Products {
		switch {
		case p.Product == "":
			return nil, errors.New("ddp_list_token: a list token is mapped to an empty product name")
		case p.VendorID == "":
			return nil, fmt.Errorf("product %s: ddp_list_token is empty", p.Product)
		case upstreams.HasUnprintable(p.VendorID):
			// A pasted token with a space or line break would make every
			// key of the product "not found".
			return nil, fmt.Errorf("product %s: ddp_list_token contains spaces, control or non-ASCII characters", p.Product)
		}
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	return &Source{endpoint: base + verifyPath, client: client, products: cfg.Products}, nil
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return name }

// CanonicalKey implements upstreams.Source. The app's keys are four groups
// of eight hexadecimal digits, XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX; it
// issues them in upper case (the documented example is
// 85DB262A-C19D4B06-A5335A6B-8C079166), so a key typed in lower case is
// upper-cased to match what the buyer was sent.
func (s *Source) CanonicalKey(key string) (string, error) {
	k, err := upstreams.CleanKeyWithin(key, upstreams.MaxKeyLength)
	if err != nil {
		return "", err
	}
	const format = "not a Digital Downloads Pro licence key (XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX)"
	if len(k) != 35 {
		return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, format)
	}
	k = strings.ToUpper(k)
	for i := 0; i < len(k); i++ {
		c := k[i]
		if i%9 == 8 {
			if c != '-' {
				return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, format)
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, format)
		}
	}
	return k, nil
}

// Verify implements upstreams.Source. With a product in the request only
// that product's lists are asked; otherwise every configured list, in
// order. A 404 from one list sends us to the next; the first list that
// knows the key decides, since a key lives in one list only. A list that
// cannot answer does not stop the search (a Valid answer from a later list
// still counts), but its Unknown wins over a final "not found": that list
// may hold the key. A rate limit stops at once, since every list shares it.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	lists := s.lists(req.Product)
	if len(lists) == 0 {
		return upstreams.UnknownVerdict(ErrNoListToken)
	}
	return upstreams.AskEach(ctx, lists, func(ctx context.Context, l upstreams.ProductMapping) upstreams.Verdict {
		return s.verifyIn(ctx, l, req.Key)
	})
}

// lists returns the list tokens to ask, each once, with the slug its
// answer maps to.
func (s *Source) lists(product string) upstreams.ProductMap {
	var out upstreams.ProductMap
	for _, p := range s.products.For(product) {
		if _, seen := out.Product(p.VendorID); !seen {
			out = append(out, p)
		}
	}
	return out
}

// order is the order a key was assigned in.
type order struct {
	// ShopifyID is the Shopify order's id, which the store's webhooks
	// name (hooks.go).
	ShopifyID upstreams.HookID `json:"shopify_id"`
	Status    string           `json:"status"`
	Email     string           `json:"email"`
}

// answer is the documented 200 body; only the fields classification needs.
type answer struct {
	Valid               *bool   `json:"valid"`
	DisabledAt          *string `json:"disabled_at"`
	AssignedAt          *string `json:"assigned_at"`
	LicenseKey          string  `json:"license_key"`
	LicenseKeyListToken string  `json:"license_key_list_token"`
	Order               *order  `json:"order"`
}

// verifyIn asks one list about key.
func (s *Source) verifyIn(ctx context.Context, list upstreams.ProductMapping, key string) upstreams.Verdict {
	form := url.Values{
		"license_key_list_token": {list.VendorID},
		"license_key":            {key},
		// Never spend the buyer's uses: the author may limit them.
		"increment_uses_count": {"false"},
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return upstreams.Unavailable(name, nil, err)
	}
	httpReq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	httpReq.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(ctx, httpReq)
	if err != nil {
		return upstreams.Unavailable(name, nil, err)
	}
	switch {
	case resp.Status == http.StatusOK:
		return classify(resp.Body, list, key)
	case resp.Status == http.StatusNotFound && !vendorNotFound(resp.Body):
		// An HTML page from a proxy or a wrong base_url: not the API speaking.
		return upstreams.Unavailable(name, resp, nil)
	case resp.Status == http.StatusNotFound:
		return upstreams.InvalidVerdict(upstreams.NotFound)
	case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
		// No buyer credential is involved: the list token was refused.
		return upstreams.UnknownVerdict(&upstreams.AuthorCredentialError{Source: name, Status: resp.Status})
	case resp.Status == http.StatusTooManyRequests:
		return upstreams.RateLimited(name, resp, s.client.Now())
	default:
		return upstreams.Unavailable(name, resp, nil)
	}
}

// classify reads a 200 answer.
func classify(body []byte, list upstreams.ProductMapping, key string) upstreams.Verdict {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer: %w", name, err))
	}
	if a.Valid == nil {
		return upstreams.UnknownVerdict(errors.New(name + `: answer has no "valid" flag`))
	}
	// An answer about another key or list is not an answer to our question.
	if a.LicenseKeyListToken != "" && a.LicenseKeyListToken != list.VendorID {
		return upstreams.UnknownVerdict(errors.New(name + ": answer is about another licence key list"))
	}
	if a.LicenseKey != "" && !strings.EqualFold(a.LicenseKey, key) {
		return upstreams.UnknownVerdict(errors.New(name + ": answer is about another licence key"))
	}
	disabled := present(a.DisabledAt)
	if *a.Valid {
		if disabled {
			return upstreams.UnknownVerdict(errors.New(name + ": answer is valid yet disabled"))
		}
		rec := upstreams.Record{Product: list.Product}
		if a.Order != nil {
			rec.LicensedTo = strings.TrimSpace(a.Order.Email)
			rec.Email = rec.LicensedTo
			rec.Refs = upstreams.AddVendorID(nil, upstreams.IDOrder, string(a.Order.ShopifyID))
		}
		return upstreams.ValidVerdict(rec)
	}
	return invalidReason(a, disabled)
}

// invalidReason explains valid=false with the documented reasons, in the
// order the fields make them certain: disabled, never assigned, then the
// order's status.
func invalidReason(a answer, disabled bool) upstreams.Verdict {
	if disabled {
		return upstreams.InvalidVerdict(upstreams.Disabled)
	}
	if !present(a.AssignedAt) {
		// A key still in the list, never handed to a buyer: no sale stands
		// behind it.
		return upstreams.InvalidVerdict(upstreams.NotFound)
	}
	if a.Order == nil {
		return upstreams.UnknownVerdict(errors.New(name + ": invalid key with no order and no documented reason"))
	}
	switch status := normalStatus(a.Order.Status); status {
	case "delivered":
		// The order stands, the key is assigned and not disabled: of the
		// documented reasons only "the line item was refunded or removed
		// from the order" is left.
		return upstreams.InvalidVerdict(upstreams.Refunded)
	case "refunded", "cancelled", "canceled":
		return upstreams.InvalidVerdict(upstreams.Refunded)
	case "revoked":
		return upstreams.InvalidVerdict(upstreams.Revoked)
	case "on-hold":
		// The merchant holds the order (payment or fraud review): not in
		// good standing now, but it may be released.
		return upstreams.InvalidVerdict(upstreams.Suspended)
	default:
		return upstreams.UnknownVerdict(fmt.Errorf("%s: invalid key with unrecognised order status %q", name, clip(status)))
	}
}

// present reports whether a nullable timestamp is set.
func present(s *string) bool {
	return s != nil && strings.TrimSpace(*s) != "" && strings.TrimSpace(*s) != "null"
}

// normalStatus folds the spellings of a status: On Hold, on_hold, on-hold.
func normalStatus(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.NewReplacer("_", "-", " ", "-").Replace(s)
}

// clip bounds vendor text quoted in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// vendorNotFound tells the API's documented 404 (no body, or JSON) from
// another server's error page.
func vendorNotFound(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) == 0 || json.Valid(b)
}

// Recheck implements upstreams.Rechecker: the verify call, which always
// sends increment_uses_count=false, spends none of the buyer's uses.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product})
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

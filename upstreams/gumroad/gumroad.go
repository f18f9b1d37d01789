// Package gumroad verifies Gumroad licence keys with the public verify
// endpoint, which needs no author credentials:
//
//	POST {base}/v2/licenses/verify
//	product_id=<Gumroad product id>&license_key=<key>&increment_uses_count=false
//
// increment_uses_count is always sent as false: Gumroad's default is true,
// and a gateway that re-verifies keys on a schedule would otherwise burn
// through the uses counter authors enforce limits with.
//
// A licence is looked up within one product, so the product id must be
// sent (Gumroad answers HTTP 500 without it for products created since
// January 2023): the Caddyfile ties our products to Gumroad product ids
// (gumroad_product), and New refuses a source with none. Without a
// product in the request every mapping is tried in order.
//
// Gumroad answers 404 {"success":false,"message":...} for three different
// things, told apart only by the message (Api::V2::LicensesController):
//
//   - "That license does not exist for the provided product.": NotFound
//     (a product id mistyped in the Caddyfile looks the same, every key
//     unknown, which the gateway's recheck treats with care, SPEC 7);
//   - "This license key has been disabled.": the seller disabled the key,
//     and since antiwork/gumroad#7326 every full refund disables it:
//     Revoked;
//   - "Access to the purchase associated with this license has expired.":
//     the seller revoked the purchase's access: Revoked.
//
// Any other 404 message is Unknown. A recheck (Recheck) is the same verify
// call, which with increment_uses_count=false changes nothing at Gumroad.
//
// The licence type is the purchase's variant (the tier of a membership),
// or upstreams.DefaultType for a product without variants.
package gumroad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Name is the source's name.
const Name = "gumroad"

// verifyPath is the licence verify endpoint, relative to the base URL.
const verifyPath = "/v2/licenses/verify"

// Key length bounds. Gumroad generates keys as four groups of eight
// upper-case hex digits (35 characters), but a licence's serial may be set
// otherwise (customers imported from elsewhere keep their keys), so any
// printable ASCII of a plausible length is asked about.
const (
	minKeyLength = 4
	maxKeyLength = 255
)

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.gumroad.com (Caddyfile
	// base_url). Required.
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products ties our product slugs to Gumroad product ids (Caddyfile
	// gumroad_product, e.g. 32-nPAicqbLj8B_WswVlMw==, shown in the
	// product's license key module). Required: at least one.
	Products upstreams.ProductMap
}

// Source verifies Gumroad licence keys.
type Source struct {
	endpoint string // base URL + verifyPath
	client   upstreams.Client
	products upstreams.ProductMap
}

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	base, err := upstreams.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	if err := checkProducts(cfg.Products); err != nil {
		return nil, err
	}
	return &Source{endpoint: base + verifyPath, client: client, products: cfg.Products}, nil
}

// checkProducts requires a mapping (every verify call names a product) and
// refuses ids that could not be one or that are given to two products.
func checkProducts(m upstreams.ProductMap) error {
	if len(m) == 0 {
		return errors.New("gumroad_product is required: Gumroad verifies a key only within a product, and answers HTTP 500 without product_id")
	}
	return m.Check("gumroad_product", true, func(id string) error {
		if id == "" || len(id) > 100 || upstreams.HasUnprintable(id) {
			return fmt.Errorf("gumroad_product %q is not a Gumroad product id", id)
		}
		return nil
	})
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return Name }

// CanonicalKey implements upstreams.Source. A key of Gumroad's generated
// form (XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX, hex) is upper-cased, as
// Gumroad issues it; any other printable ASCII key of 4 to 255 characters
// is kept as typed, since sellers' imported keys have their own forms.
func (s *Source) CanonicalKey(key string) (string, error) {
	k, err := upstreams.CleanKeyWithin(key, upstreams.MaxKeyLength)
	if err != nil {
		return "", err
	}
	if len(k) < minKeyLength || len(k) > maxKeyLength {
		return "", fmt.Errorf("%w: a Gumroad licence key has %d to %d characters", upstreams.ErrKeyFormat, minKeyLength, maxKeyLength)
	}
	if isGeneratedKey(k) {
		return strings.ToUpper(k), nil
	}
	return k, nil
}

// isGeneratedKey reports the form Gumroad generates: four groups of eight
// hex digits, in either case.
func isGeneratedKey(k string) bool {
	if len(k) != 35 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if i%9 == 8 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// errNoMapping is an Unknown cause: the gateway asked about a product that
// has no gumroad_product, an author configuration gap, not the buyer's
// fault.
var errNoMapping = errors.New("no gumroad_product is configured for the product")

// Verify implements upstreams.Source. With several mappings to try, a
// definitive answer for one ends the search; the key is NotFound only when
// every product said so, and an Unknown from any of them (an outage) keeps
// the whole verdict Unknown.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	// New requires a mapping, so a request naming no product has some
	mappings, key, err := upstreams.Prepare(s, s.products, req, errNoMapping)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	return upstreams.AskEach(ctx, mappings, func(ctx context.Context, m upstreams.ProductMapping) upstreams.Verdict {
		return s.verify(ctx, key, m)
	})
}

// verify asks about the key within one product.
func (s *Source) verify(ctx context.Context, key string, m upstreams.ProductMapping) upstreams.Verdict {
	form := url.Values{
		"product_id":           {m.VendorID},
		"license_key":          {key},
		"increment_uses_count": {"false"},
	}
	hreq, err := http.NewRequest(http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, err))
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("User-Agent", upstreams.UserAgent)
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		// the key travels in the body, never in the URL an error quotes
		return upstreams.Unavailable(Name, nil, err)
	}
	return s.classify(resp, m)
}

// verification is the verify answer, e.g.
//
//	{"success":true,"uses":3,
//	 "purchase":{"seller_id":"kL0psVL2admJSYRNs-OCMg==",
//	   "product_id":"32-nPAicqbLj8B_WswVlMw==","product_name":"licenses demo product",
//	   "email":"customer@example.com","full_name":"Maxwell Elliott",
//	   "quantity":1,"variants":"","license_key":"85DB262A-C19D4B06-A5335A6B-8C079166",
//	   "is_multiseat_license":false,"refunded":false,"disputed":false,
//	   "dispute_won":false,"chargebacked":false,"created_at":"2021-01-05T19:38:56Z",
//	   "subscription_ended_at":null,"subscription_cancelled_at":null,
//	   "subscription_failed_at":null, ...}}
//
// full_name is absent when the buyer gave none; chargebacked and refunded
// come from the purchase for one-off products, the subscription_* times
// for memberships. A licence of a customer the seller imported has
// imported_customer instead of purchase. The key is never read back.
type verification struct {
	Success          *bool             `json:"success"`
	Message          string            `json:"message"`
	Purchase         *purchase         `json:"purchase"`
	ImportedCustomer *importedCustomer `json:"imported_customer"`
}

type purchase struct {
	SaleID                  string          `json:"sale_id"`
	SubscriptionID          string          `json:"subscription_id"`
	ProductID               string          `json:"product_id"`
	Email                   string          `json:"email"`
	FullName                string          `json:"full_name"`
	Variants                json.RawMessage `json:"variants"`
	Quantity                int             `json:"quantity"`
	IsMultiseatLicense      bool            `json:"is_multiseat_license"`
	Refunded                bool            `json:"refunded"`
	Chargebacked            bool            `json:"chargebacked"`
	Disputed                bool            `json:"disputed"`
	DisputeWon              bool            `json:"dispute_won"`
	SubscriptionEndedAt     *string         `json:"subscription_ended_at"`
	SubscriptionCancelledAt *string         `json:"subscription_cancelled_at"`
	SubscriptionFailedAt    *string         `json:"subscription_failed_at"`
}

type importedCustomer struct {
	Email string `json:"email"`
}

// classify turns Gumroad's answer for one product into a verdict.
func (s *Source) classify(resp *upstreams.Response, m upstreams.ProductMapping) upstreams.Verdict {
	switch resp.Status {
	case http.StatusOK, http.StatusNotFound:
	case http.StatusTooManyRequests:
		return upstreams.RateLimited(Name, resp, s.client.Now())
	default:
		// 500 (product_id refused), 400 (a parameter not a string), 401,
		// 5xx: nothing about the key
		return upstreams.Unavailable(Name, resp, nil)
	}
	var a verification
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d: unreadable answer: %w", Name, resp.Status, err))
	}
	if a.Success == nil {
		// not Gumroad's shape: a proxy page or a wrong base_url must not
		// declare keys unknown
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d without Gumroad's \"success\" field (check base_url)", Name, resp.Status))
	}
	if resp.Status == http.StatusNotFound {
		if *a.Success {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 404 claiming success", Name))
		}
		return notFound(a.Message)
	}
	if !*a.Success {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 200 without success", Name))
	}
	return s.licence(a, m)
}

// notFound classifies a 404 by its message (see the package doc).
func notFound(message string) upstreams.Verdict {
	m := strings.ToLower(strings.Join(strings.Fields(message), " "))
	switch {
	case strings.Contains(m, "does not exist"):
		return upstreams.InvalidVerdict(upstreams.NotFound)
	case strings.Contains(m, "has been disabled"):
		return upstreams.InvalidVerdict(upstreams.Revoked)
	case strings.HasPrefix(m, "access to the purchase") && strings.Contains(m, "has expired"):
		return upstreams.InvalidVerdict(upstreams.Revoked)
	default:
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 404 with an unrecognised message %.80q", Name, message))
	}
}

// licence classifies a successful answer: a licence Gumroad knows for the
// product asked about, in whatever state its purchase is.
func (s *Source) licence(a verification, m upstreams.ProductMapping) upstreams.Verdict {
	p := a.Purchase
	if p == nil {
		if a.ImportedCustomer != nil {
			// a seller-imported licence: no purchase, so nothing to revoke
			email := strings.TrimSpace(a.ImportedCustomer.Email)
			return upstreams.ValidVerdict(upstreams.Record{Product: m.Product, Type: upstreams.DefaultType, LicensedTo: email, Email: email})
		}
		return upstreams.UnknownVerdict(fmt.Errorf("%s: success without a purchase", Name))
	}
	if p.ProductID != "" && p.ProductID != m.VendorID {
		// the licence was looked up within our product id: an answer
		// about another product is one we cannot read
		return upstreams.UnknownVerdict(fmt.Errorf("%s: answered for product %.60q, asked about %q", Name, p.ProductID, m.VendorID))
	}
	if p.Refunded {
		return upstreams.InvalidVerdict(upstreams.Refunded)
	}
	if p.Chargebacked || p.Disputed && !p.DisputeWon {
		// the buyer's bank took the payment back; a dispute the seller
		// wins later clears disputed and the licence is valid again
		return upstreams.InvalidVerdict(upstreams.Revoked)
	}
	sub, err := times(p)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", Name, err))
	}
	rec := upstreams.Record{
		Product:    m.Product,
		Type:       variantType(p.Variants),
		LicensedTo: firstOf(p.FullName, p.Email),
	}
	rec.Email = strings.TrimSpace(p.Email)
	// the ids a Ping names the purchase by (hooks.go)
	rec.Refs = upstreams.AddVendorID(rec.Refs, upstreams.IDSale, p.SaleID)
	rec.Refs = upstreams.AddVendorID(rec.Refs, upstreams.IDSubscription, p.SubscriptionID)
	now := s.client.Now()
	switch {
	case sub.ended != nil || sub.failed != nil:
		// Gumroad's own rule: a membership with ended_at or failed_at set
		// is no longer alive (failed_at comes after the retry period)
		return upstreams.InvalidVerdict(upstreams.Expired)
	case sub.cancelled != nil && !sub.cancelled.After(now):
		return upstreams.InvalidVerdict(upstreams.Expired)
	case sub.cancelled != nil:
		// cancelled at the end of the paid period: alive until then
		rec.ExpiresAt = sub.cancelled
	}
	if p.IsMultiseatLicense && p.Quantity > 0 {
		// a multi-seat membership: quantity is the number of seats
		rec.ActivationsLimit = p.Quantity
	}
	return upstreams.ValidVerdict(rec)
}

type subscriptionTimes struct {
	ended, cancelled, failed *time.Time
}

func times(p *purchase) (subscriptionTimes, error) {
	var st subscriptionTimes
	for _, f := range []struct {
		name string
		raw  *string
		dst  **time.Time
	}{
		{"subscription_ended_at", p.SubscriptionEndedAt, &st.ended},
		{"subscription_cancelled_at", p.SubscriptionCancelledAt, &st.cancelled},
		{"subscription_failed_at", p.SubscriptionFailedAt, &st.failed},
	} {
		if f.raw == nil {
			continue
		}
		t, err := upstreams.ParseTime(*f.raw)
		if err != nil {
			return st, fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = t
	}
	return st, nil
}

// variantType is the licence type: the purchase's variant, documented as
// a string such as "" or "(Pro)", or an object of category to option
// ({"Tier": "Pro"}) as in Gumroad's sale pings; read by upstreams.TypeName
// without the parentheses ("(Pro)" -> pro; several options joined, in
// category order). No variant is upstreams.DefaultType.
func variantType(raw json.RawMessage) string {
	var v string
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		var byCategory map[string]string
		if len(raw) == 0 || json.Unmarshal(raw, &byCategory) != nil {
			return upstreams.DefaultType
		}
		categories := make([]string, 0, len(byCategory))
		for c := range byCategory {
			categories = append(categories, c)
		}
		slices.Sort(categories)
		var opts []string
		for _, c := range categories {
			opts = append(opts, byCategory[c])
		}
		v = strings.Join(opts, " ")
	}
	v = strings.TrimSpace(v)
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "("), ")"))
	return upstreams.TypeName(v)
}

// Recheck implements upstreams.Rechecker: the verify call, which sends
// increment_uses_count=false, changes nothing at Gumroad.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product})
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

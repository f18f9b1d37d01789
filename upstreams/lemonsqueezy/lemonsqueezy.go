// Package lemonsqueezy verifies Lemon Squeezy licence keys with the public
// License API, which needs no author credentials:
//
//	POST {base}/v1/licenses/validate
//	Accept: application/json
//	Content-Type: application/x-www-form-urlencoded
//	license_key=<key>
//
// The answer says whether the key is valid, the key's status (inactive,
// active, expired, disabled), its activation limit and expiry, and in meta
// the product it was bought for; the Caddyfile ties our products to
// Lemon Squeezy product ids (lemonsqueezy_product). The License API is
// rate limited to 60 requests a minute.
//
// "inactive" means only that the key has no Lemon Squeezy instances yet
// ("The license key is valid but has no activations", docs.lemonsqueezy.com
// /api/license-api): this gateway keeps its own activations and never
// creates instances, so an inactive key is a good purchase.
//
// Two answers say less than they seem to. A key bought in test mode
// (license_key.test_mode, a store's checkout tried with a test card) is
// valid to the License API but no licence of a production product: it is
// refused as WrongProduct, a refusal about the request that a recheck
// treats as unknown, unless the source allows test mode (AllowTestMode).
// And a key whose expires_at has passed is Expired even while its status
// still says active or inactive (the status is updated later).
//
// A recheck (Recheck) is the same validate call: it never activates, so it
// creates no instance and changes nothing at Lemon Squeezy. The licence
// type is the variant's name (upstreams.TypeName), "regular" for a product
// without variants (Lemon Squeezy names its variant "Default").
package lemonsqueezy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/licensegate/licensegate/upstreams"
)

// Name is the source's name.
const Name = "lemonsqueezy"

// validatePath is the License API's validate endpoint, relative to the base
// URL.
const validatePath = "/v1/licenses/validate"

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.lemonsqueezy.com
	// (Caddyfile base_url). Required.
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products ties our product slugs to Lemon Squeezy product ids
	// (Caddyfile lemonsqueezy_product, e.g. 12345: the number in the
	// product's dashboard URL, meta.product_id in API answers).
	Products upstreams.ProductMap
	// AllowTestMode accepts keys bought in test mode (Caddyfile
	// allow_test_mode), for a staging gateway. Default: they are refused
	// as wrong_product.
	AllowTestMode bool
}

// Source verifies Lemon Squeezy licence keys.
type Source struct {
	endpoint      string // base URL + validatePath
	client        upstreams.Client
	products      upstreams.ProductMap
	allowTestMode bool
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
	return &Source{endpoint: base + validatePath, client: client, products: cfg.Products, allowTestMode: cfg.AllowTestMode}, nil
}

// checkProducts refuses mappings that could never match (Lemon Squeezy
// product ids are numbers) and ids given to two products, which would make
// the answer's product ambiguous.
func checkProducts(m upstreams.ProductMap) error {
	return m.Check("lemonsqueezy_product", true, func(id string) error {
		if !upstreams.IsNumericID(id) {
			return fmt.Errorf("lemonsqueezy_product %q is not a Lemon Squeezy product id (a number)", id)
		}
		return nil
	})
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return Name }

// CanonicalKey implements upstreams.Source: Lemon Squeezy keys are UUIDs,
// compared lower-cased as the API shows them.
func (s *Source) CanonicalKey(key string) (string, error) { return upstreams.UUIDKey(key) }

// errNoMapping is an Unknown cause: the gateway asked about a product that
// has no lemonsqueezy_product, an author configuration gap, not the buyer's
// fault.
var errNoMapping = errors.New("no lemonsqueezy_product is configured for the product")

// Verify implements upstreams.Source.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	mappings, key, err := upstreams.Prepare(s, s.products, req, errNoMapping)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	form := url.Values{"license_key": {key}}
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
	return s.classify(resp, mappings)
}

// validation is the validate response, e.g.
//
//	{"valid":true,"error":null,
//	 "license_key":{"id":1,"status":"active","key":"38b1460a-...",
//	   "activation_limit":1,"activation_usage":5,
//	   "created_at":"2021-01-24T14:15:07.000000Z",
//	   "expires_at":"2022-01-24T14:15:07.000000Z","test_mode":false},
//	 "instance":null,
//	 "meta":{"store_id":1,"order_id":2,"order_item_id":3,"product_id":4,
//	   "product_name":"Example Product","variant_id":5,
//	   "variant_name":"Example Variant","customer_id":6,
//	   "customer_name":"Luke Skywalker","customer_email":"luke@skywalker.dev"}}
//
// An unknown key is HTTP 404 {"valid":false,"error":"license_key not found."}.
// The key's own value is never read back.
type validation struct {
	Valid      *bool       `json:"valid"`
	Error      *string     `json:"error"`
	LicenseKey *licenseKey `json:"license_key"`
	Meta       *meta       `json:"meta"`
}

type licenseKey struct {
	ID              upstreams.HookID `json:"id"`
	Status          string           `json:"status"`
	TestMode        bool             `json:"test_mode"`
	ActivationLimit *int             `json:"activation_limit"` // null: unlimited
	ExpiresAt       *string          `json:"expires_at"`       // null: never
}

type meta struct {
	OrderID       upstreams.HookID `json:"order_id"`
	ProductID     json.Number      `json:"product_id"` // a number; a numeric string is read too
	VariantName   string           `json:"variant_name"`
	CustomerName  string           `json:"customer_name"`
	CustomerEmail string           `json:"customer_email"`
}

// classify turns the License API's answer into a verdict.
func (s *Source) classify(resp *upstreams.Response, mappings upstreams.ProductMap) upstreams.Verdict {
	switch {
	case resp.Status == http.StatusTooManyRequests:
		return upstreams.RateLimited(Name, resp, s.client.Now())
	case resp.Status == http.StatusOK, resp.Status == http.StatusBadRequest, resp.Status == http.StatusNotFound:
		// 400 is documented as "see the error field": it is read like a
		// 200, and only a key status the body states can make it Invalid
	default:
		// 422 (a field missing: our request), 401/403 (no credentials are
		// sent, so a proxy's), 5xx: nothing about the key
		return upstreams.Unavailable(Name, resp, nil)
	}
	var a validation
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d: unreadable answer: %w", Name, resp.Status, err))
	}
	if resp.Status == http.StatusNotFound {
		return notFound(a)
	}
	if a.Valid == nil {
		// not the License API's shape: a proxy page or a wrong base_url
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d without the License API's \"valid\" field (check base_url)", Name, resp.Status))
	}
	return s.licence(a, resp.Status, mappings)
}

// notFound accepts a 404 only in the License API's own shape ("valid":
// false, or the documented "error" explanation): a 404 page from a proxy
// or a wrong base_url would otherwise declare every key unknown.
func notFound(a validation) upstreams.Verdict {
	switch {
	case a.Valid != nil && *a.Valid:
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 404 claiming a valid key", Name))
	case a.Valid != nil, a.Error != nil && *a.Error != "":
		return upstreams.InvalidVerdict(upstreams.NotFound)
	default:
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 404 without the License API's error body (check base_url)", Name))
	}
}

// licence classifies an answer that describes a key.
func (s *Source) licence(a validation, status int, mappings upstreams.ProductMap) upstreams.Verdict {
	if a.LicenseKey == nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d describes no license_key", Name, status))
	}
	product, named, verdict := productOf(a.Meta, mappings)
	if verdict != nil {
		return *verdict
	}
	if a.LicenseKey.TestMode && !s.allowTestMode {
		// a test purchase: no licence of the production product
		return upstreams.InvalidVerdict(upstreams.WrongProduct)
	}
	valid := *a.Valid
	switch st := a.LicenseKey.Status; st {
	case "active", "inactive":
		if !valid {
			// refused with a status that is no refusal: unexplained
			return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP %d: key %s but not valid", Name, status, st))
		}
		if !named {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: a valid key whose answer names no product", Name))
		}
		return s.record(a, product)
	case "expired", "disabled":
		if valid {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: key %s but valid", Name, st))
		}
		if st == "expired" {
			return upstreams.InvalidVerdict(upstreams.Expired)
		}
		return upstreams.InvalidVerdict(upstreams.Disabled)
	default:
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unrecognised key status %.40q", Name, st))
	}
}

// productOf maps meta.product_id to our slug. named is false when the
// answer names no product. A named product that is not ours is a definitive
// WrongProduct (Lemon Squeezy said what the key buys, whatever else it
// says); a product id that is not a number is an answer we cannot read.
func productOf(m *meta, mappings upstreams.ProductMap) (product string, named bool, v *upstreams.Verdict) {
	if m == nil || m.ProductID == "" {
		return "", false, nil
	}
	id := m.ProductID.String()
	if !upstreams.IsNumericID(id) {
		u := upstreams.UnknownVerdict(fmt.Errorf("%s: meta.product_id %.40q is not a product id", Name, id))
		return "", true, &u
	}
	product, ok := mappings.Product(id)
	if !ok {
		w := upstreams.InvalidVerdict(upstreams.WrongProduct)
		return "", true, &w
	}
	return product, true, nil
}

// record maps a valid key to the gateway's licence record.
func (s *Source) record(a validation, product string) upstreams.Verdict {
	lk, m := a.LicenseKey, a.Meta
	rec := upstreams.Record{
		Product:    product,
		Type:       upstreams.TypeName(m.VariantName),
		LicensedTo: firstOf(m.CustomerName, m.CustomerEmail),
	}
	rec.Email = strings.TrimSpace(m.CustomerEmail)
	// the ids its webhooks name the purchase by (hooks.go)
	rec.Refs = upstreams.AddVendorID(rec.Refs, upstreams.IDLicence, string(lk.ID))
	rec.Refs = upstreams.AddVendorID(rec.Refs, upstreams.IDOrder, string(m.OrderID))
	if lk.ExpiresAt != nil {
		t, err := upstreams.ParseTime(*lk.ExpiresAt)
		if err != nil {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: expires_at: %w", Name, err))
		}
		if t != nil && !t.After(s.client.Now()) {
			// past its expiry, whatever the status says yet
			return upstreams.InvalidVerdict(upstreams.Expired)
		}
		rec.ExpiresAt = t
	}
	if lk.ActivationLimit != nil {
		if *lk.ActivationLimit < 0 {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: negative activation_limit", Name))
		}
		// 0 is no limit of the vendor's: the product's own applies
		rec.ActivationsLimit = *lk.ActivationLimit
	}
	return upstreams.ValidVerdict(rec)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// Recheck implements upstreams.Rechecker: the validate call, never
// activate, so nothing changes at Lemon Squeezy.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product})
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

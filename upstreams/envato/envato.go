// Package envato verifies Envato Market (CodeCanyon, ThemeForest, ...)
// purchase codes with the author's personal token:
//
//	GET {base}/v3/market/author/sale?code=<purchase code>
//	Authorization: Bearer <personal token>
//
// The sale's item id says which product the code buys; the Caddyfile ties
// our products to item ids (envato_item). Envato licences never expire and
// carry no activation limit of their own; supported_until is the support
// period.
//
// Envato answers 404 for a code it knows no sale for, and also for sale
// reversals and for codes of closed or suspended buyer accounts: the
// gateway's recheck treats not_found with care for that reason (SPEC
// section 7). A 401 or 403 is the author's token, never the buyer's code.
package envato

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
const Name = "envato"

// salePath is the author sale lookup, relative to the base URL.
const salePath = "/v3/market/author/sale"

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.envato.com (Caddyfile
	// base_url). Required.
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products ties our product slugs to Envato item ids (Caddyfile
	// envato_item, e.g. 12345678).
	Products upstreams.ProductMap
	// Token is the author's personal token, created at
	// build.envato.com with "View your items' sales history" (Caddyfile
	// token). Required.
	Token string
}

// Source verifies Envato purchase codes.
type Source struct {
	endpoint string // base URL + salePath
	client   upstreams.Client
	products upstreams.ProductMap
	auth     string // "Bearer <token>"
}

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	base, err := upstreams.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(cfg.Token)
	if token == "" {
		return nil, errors.New("token is required")
	}
	if upstreams.HasUnprintable(token) {
		// a header cannot carry it, and a pasted token with a space inside
		// is a copy mistake; the token itself is never echoed
		return nil, errors.New("token contains spaces, control or non-ASCII characters")
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	if err := checkProducts(cfg.Products); err != nil {
		return nil, err
	}
	return &Source{
		endpoint: base + salePath,
		client:   client,
		products: cfg.Products,
		auth:     "Bearer " + token,
	}, nil
}

// checkProducts refuses mappings that could never match: Envato item ids
// are numbers.
func checkProducts(m upstreams.ProductMap) error {
	return m.Check("envato_item", false, func(id string) error {
		if !upstreams.IsNumericID(id) {
			return fmt.Errorf("envato_item %q is not an Envato item id (a number, as in the item's URL)", id)
		}
		return nil
	})
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return Name }

// CanonicalKey implements upstreams.Source: purchase codes are UUIDs,
// compared lower-cased. Look-alike characters pasted from a PDF are refused
// here rather than sent (Envato rejects them anyway).
func (s *Source) CanonicalKey(key string) (string, error) { return upstreams.UUIDKey(key) }

// errNoMapping is an Unknown cause: the gateway asked about a product that
// has no envato_item, an author configuration gap, not the buyer's fault.
var errNoMapping = errors.New("no envato_item is configured for the product")

// Verify implements upstreams.Source.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	mappings, code, err := upstreams.Prepare(s, s.products, req, errNoMapping)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	hreq, err := http.NewRequest(http.MethodGet, s.endpoint+"?"+url.Values{"code": {code}}.Encode(), nil)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, upstreams.Redact(err, code, "[code]")))
	}
	hreq.Header.Set("Authorization", s.auth)
	hreq.Header.Set("User-Agent", upstreams.UserAgent)
	hreq.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		// url.Error quotes the URL, which holds the code
		return upstreams.Unavailable(Name, nil, upstreams.Redact(err, code, "[code]"))
	}
	return s.classify(resp, mappings)
}

// classify turns Envato's answer into a verdict.
func (s *Source) classify(resp *upstreams.Response, mappings upstreams.ProductMap) upstreams.Verdict {
	switch {
	case resp.Status == http.StatusOK:
		return s.sale(resp.Body, mappings)
	case resp.Status == http.StatusNotFound:
		return notFound(resp)
	case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
		// a deleted token, or one without the sales-history permission
		return upstreams.UnknownVerdict(&upstreams.AuthorCredentialError{Source: Name, Status: resp.Status})
	case resp.Status == http.StatusTooManyRequests:
		return upstreams.RateLimited(Name, resp, s.client.Now())
	default:
		// 400 included: with a well-formed UUID sent, a bad request is our
		// request or an API change, never a statement about the sale
		return upstreams.Unavailable(Name, resp, nil)
	}
}

// apiError is Envato's error body, e.g.
// {"error":404,"description":"No sale belonging to the current user found with that code"}.
type apiError struct {
	Error       json.RawMessage `json:"error"`
	Description string          `json:"description"`
}

// notFound accepts a 404 only in Envato's own JSON error shape: a 404 page
// from a proxy or a wrong base_url would otherwise declare every code
// unknown.
func notFound(resp *upstreams.Response) upstreams.Verdict {
	var e apiError
	if err := json.Unmarshal(resp.Body, &e); err != nil || len(e.Error) == 0 || string(e.Error) == "null" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: HTTP 404 without Envato's error body (check base_url)", Name))
	}
	return upstreams.InvalidVerdict(upstreams.NotFound)
}

// sale is the 200 answer, e.g.
//
//	{"amount":"19.84","sold_at":"2016-09-07T10:54:28+10:00",
//	 "license":"Regular License","support_amount":"0.00",
//	 "supported_until":"2017-03-09T01:54:28+11:00",
//	 "item":{"id":17022701,"name":"SEO Studio", ...},
//	 "buyer":"buyers_username","purchase_count":1}
//
// buyer is null after a guest checkout; supported_until may be null.
type sale struct {
	License        *string   `json:"license"`
	SupportedUntil *string   `json:"supported_until"`
	Buyer          *string   `json:"buyer"`
	Item           *saleItem `json:"item"`
}

type saleItem struct {
	ID   json.RawMessage `json:"id"`
	Name string          `json:"name"`
}

func (s *Source) sale(body []byte, mappings upstreams.ProductMap) upstreams.Verdict {
	var sl sale
	if err := json.Unmarshal(body, &sl); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable sale: %w", Name, err))
	}
	if sl.Item == nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the sale names no item", Name))
	}
	itemID, ok := parseItemID(sl.Item.ID)
	if !ok {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the sale's item id %.40q is not a number", Name, string(sl.Item.ID)))
	}
	product, ok := mappings.Product(itemID)
	if !ok {
		// Envato said which item the code buys, and it is not ours here
		return upstreams.InvalidVerdict(upstreams.WrongProduct)
	}
	rec := upstreams.Record{Product: product, Type: licenseType(deref(sl.License))}
	if sl.Buyer != nil {
		rec.LicensedTo = *sl.Buyer
	}
	if sl.SupportedUntil != nil {
		t, err := upstreams.ParseTime(*sl.SupportedUntil)
		if err != nil {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: supported_until: %w", Name, err))
		}
		rec.SupportUntil = t
	}
	return upstreams.ValidVerdict(rec)
}

// parseItemID reads item.id, documented as a JSON number; a numeric string
// is accepted too. Anything else (a float, a negative) is not an item.
func parseItemID(raw json.RawMessage) (string, bool) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s, upstreams.IsNumericID(s)
}

// licenseType maps "Regular License" and "Extended License" to regular and
// extended. Another name (Envato has sold others) keeps its own words,
// lower-cased, rather than failing a paid sale.
func licenseType(s string) string {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSpace(strings.TrimSuffix(t, "license"))
	return strings.Join(strings.Fields(t), "-")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Recheck implements upstreams.Rechecker: the same sale look-up, a read
// that changes nothing at Envato.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product})
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

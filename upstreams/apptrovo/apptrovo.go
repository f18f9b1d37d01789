// Package apptrovo verifies AppTrovo licence keys (seeds/001):
//
//	GET {base}/api/v1/licenses/verify?license_key=&product_slug=&domain=
//
// The API is public, needs no credentials, and answers for every author's
// keys: only the product slug (sent, or read back from the answer) makes a
// key one of ours. The Caddyfile ties our products to AppTrovo slugs
// (apptrovo_slug).
//
// Answers carry "valid" and, when false, a "failure_reason" sentence; only
// the documented sentences are definitive. Two of them are not about the
// buyer at all: "Product not found." means the configured slug is wrong
// (the author's mistake), and the SDK's own "Unable to reach license
// server." is a network failure. The API allows 120 requests a minute per
// IP address.
//
// Sending domain binds the licence to it at AppTrovo (an activation slot),
// as the vendor's installer does; asking again for the same domain does not
// take another slot. A recheck (Recheck) therefore sends only the domain
// recorded at activation, or none, never a new one.
package apptrovo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Name is the source's name.
const Name = "apptrovo"

// verifyPath is the verify endpoint, relative to the base URL.
const verifyPath = "/api/v1/licenses/verify"

// Documented limits on the parameters.
const (
	maxSlug   = 255
	maxDomain = 255
)

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root: https://apptrovo.com, or the test
	// environment https://mp.chetsapp.de (Caddyfile base_url). Required.
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products ties our product slugs to AppTrovo product slugs (Caddyfile
	// apptrovo_slug).
	Products upstreams.ProductMap
}

// Source verifies AppTrovo licence keys.
type Source struct {
	endpoint string // base URL + verifyPath
	client   upstreams.Client
	products upstreams.ProductMap
}

// ErrUnknownSlug is the Unknown cause when AppTrovo answers "Product not
// found." for a configured apptrovo_slug: the author must fix the
// configuration; the buyer's key is not in question.
var ErrUnknownSlug = errors.New("AppTrovo does not know the product slug")

// errNoMapping is an Unknown cause: the gateway asked about a product that
// has no apptrovo_slug, an author configuration gap.
var errNoMapping = errors.New("no apptrovo_slug is configured for the product")

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

// checkProducts refuses slugs AppTrovo could never accept (at most 255
// characters, URL-safe; pasted spaces are a mistake).
func checkProducts(m upstreams.ProductMap) error {
	return m.Check("apptrovo_slug", false, func(slug string) error {
		switch {
		case slug == "":
			return errors.New("apptrovo_slug is empty")
		case len(slug) > maxSlug:
			return fmt.Errorf("apptrovo_slug is longer than %d characters", maxSlug)
		case upstreams.HasUnprintable(slug):
			return fmt.Errorf("apptrovo_slug %q holds spaces, control or non-ASCII characters", slug)
		}
		return nil
	})
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return Name }

// CanonicalKey implements upstreams.Source: AppTrovo keys are UUIDs,
// compared lower-cased.
func (s *Source) CanonicalKey(key string) (string, error) { return upstreams.UUIDKey(key) }

// Verify implements upstreams.Source. With req.Product set, the key is
// checked against that product's slug(s); without, AppTrovo resolves the
// product from the key and the answer's product.slug is mapped back.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	key, err := upstreams.UUIDKey(req.Key)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", Name, err))
	}
	if len(req.Domain) > maxDomain {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the domain is longer than AppTrovo's %d characters", Name, maxDomain))
	}
	if req.Product == "" {
		return s.ask(ctx, key, "", req.Domain, s.products)
	}
	mappings := s.products.For(req.Product)
	if len(mappings) == 0 {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w %q", Name, errNoMapping, req.Product))
	}
	// each of the product's slugs in turn (normally one)
	return upstreams.AskEach(ctx, mappings, func(ctx context.Context, m upstreams.ProductMapping) upstreams.Verdict {
		return s.ask(ctx, key, m.VendorID, req.Domain, upstreams.ProductMap{m})
	})
}

// ask sends one verify request; slug "" leaves product_slug out. mappings
// are the products an answer may be for.
func (s *Source) ask(ctx context.Context, key, slug, domain string, mappings upstreams.ProductMap) upstreams.Verdict {
	q := url.Values{"license_key": {key}}
	if slug != "" {
		q.Set("product_slug", slug)
	}
	if domain != "" {
		q.Set("domain", domain)
	}
	hreq, err := http.NewRequest(http.MethodGet, s.endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, upstreams.Redact(err, key, "[key]")))
	}
	hreq.Header.Set("User-Agent", upstreams.UserAgent)
	hreq.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		// url.Error quotes the URL, which holds the key
		return upstreams.Unavailable(Name, nil, upstreams.Redact(err, key, "[key]"))
	}
	return s.classify(resp, key, slug, mappings)
}

// answer is the verify response, e.g.
//
//	{"valid":true,"license_id":142,"product_id":28,
//	 "product":{"id":28,"slug":"your-product-slug","name":"Your Product","retired":false},
//	 "license_type":"standard","licensed_to":"Acme Corp","domain":"acme.com",
//	 "expires_at":null,"support_expires_at":"2027-04-08T00:00:00Z",
//	 "support_active":true,"activations_used":1,"activations_limit":3,
//	 "failure_reason":null}
//
// or {"valid":false,"failure_reason":"Invalid license key."}.
type answer struct {
	Valid            *bool    `json:"valid"`
	Product          *product `json:"product"`
	LicenseType      *string  `json:"license_type"`
	LicensedTo       *string  `json:"licensed_to"`
	ExpiresAt        *string  `json:"expires_at"`
	SupportExpiresAt *string  `json:"support_expires_at"`
	ActivationsLimit *int64   `json:"activations_limit"`
	FailureReason    *string  `json:"failure_reason"`
}

type product struct {
	Slug    string `json:"slug"`
	Retired bool   `json:"retired"`
}

// classify turns an answer into a verdict.
func (s *Source) classify(resp *upstreams.Response, key, slug string, mappings upstreams.ProductMap) upstreams.Verdict {
	switch {
	case resp.Status == http.StatusTooManyRequests:
		return upstreams.RateLimited(Name, resp, s.client.Now())
	case resp.Status >= 500:
		return upstreams.Unavailable(Name, resp, nil)
	case resp.Status != http.StatusOK && (resp.Status < 400 || resp.Status > 499):
		return upstreams.Unavailable(Name, resp, nil)
	}
	var a answer
	if err := json.Unmarshal(resp.Body, &a); err != nil || a.Valid == nil {
		if resp.Status != http.StatusOK {
			return upstreams.Unavailable(Name, resp, nil)
		}
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer (no valid field)", Name))
	}
	if !*a.Valid {
		// The seed's examples show failures with HTTP 200; a 4xx carrying
		// one of the documented sentences is the same definitive answer.
		return s.failure(a, resp.Status, key, slug, mappings)
	}
	if resp.Status != http.StatusOK {
		return upstreams.Unavailable(Name, resp, nil)
	}
	return s.valid(a, slug, mappings)
}

// Documented failure_reason sentences, compared by normalise.
var failures = map[string]upstreams.Reason{
	// the quick-start example's wording, without "for this product"
	"invalid license key": upstreams.NotFound,
	// "Key doesn't exist or doesn't belong to this product": AppTrovo does
	// not say which product it does belong to, so WrongProduct would be a
	// guess; NotFound also never auto-suspends (SPEC section 7)
	"invalid license key for this product":        upstreams.NotFound,
	"license has been deactivated":                upstreams.Revoked,
	"license has expired":                         upstreams.Expired,
	"license is registered to a different domain": upstreams.DomainNotAllowed,
}

// developerOnLocal starts the refusal of a developer licence on a public
// domain; the seed shows the sentence cut short ("...").
const developerOnLocal = "this is a developer license and can only activate on local domains"

// productNotFound means the product_slug matches no product.
const productNotFound = "product not found"

func (s *Source) failure(a answer, status int, key, slug string, mappings upstreams.ProductMap) upstreams.Verdict {
	text := ""
	if a.FailureReason != nil {
		text = *a.FailureReason
	}
	reason := normalise(text)
	if reason == productNotFound {
		if slug == "" {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: %q for a key asked without a product slug", Name, "Product not found."))
		}
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w %q: check the product's apptrovo_slug", Name, ErrUnknownSlug, slug))
	}
	r, ok := failures[reason]
	if !ok && strings.HasPrefix(reason, developerOnLocal) {
		r, ok = upstreams.DomainNotAllowed, true
	}
	if !ok {
		// e.g. the slots-exhausted refusal, whose wording is undocumented,
		// or a client SDK's "Unable to reach license server."
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unrecognised failure_reason %s (HTTP %d)", Name, quote(text, key), status))
	}
	if slug == "" && r != upstreams.NotFound && a.Product != nil && a.Product.Slug != "" {
		// asked without a slug, the answer may be about another author's
		// product: its state is none of ours
		if _, mine := mappings.Product(a.Product.Slug); !mine {
			return upstreams.InvalidVerdict(upstreams.WrongProduct)
		}
	}
	return upstreams.InvalidVerdict(r)
}

func (s *Source) valid(a answer, slug string, mappings upstreams.ProductMap) upstreams.Verdict {
	if a.FailureReason != nil && strings.TrimSpace(*a.FailureReason) != "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: valid answer with a failure_reason", Name))
	}
	var rec upstreams.Record
	switch got := productSlug(a); {
	case slug != "":
		// the server enforced product_slug; an answer naming another
		// product contradicts it
		if got != "" && got != slug {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: asked about product %q, answered about %q", Name, slug, got))
		}
		rec.Product, _ = mappings.Product(slug)
	case got == "":
		return upstreams.UnknownVerdict(fmt.Errorf("%s: valid answer names no product", Name))
	default:
		p, ok := mappings.Product(got)
		if !ok {
			// a real licence, for a product this gateway does not serve
			return upstreams.InvalidVerdict(upstreams.WrongProduct)
		}
		rec.Product = p
	}
	if a.Product != nil {
		rec.Retired = a.Product.Retired
	}
	if a.LicenseType != nil {
		rec.Type = strings.ToLower(strings.TrimSpace(*a.LicenseType))
	}
	if a.LicensedTo != nil {
		rec.LicensedTo = *a.LicensedTo
	}
	var err error
	if rec.ExpiresAt, err = parseTime(a.ExpiresAt); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: expires_at: %w", Name, err))
	}
	if rec.SupportUntil, err = parseTime(a.SupportExpiresAt); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: support_expires_at: %w", Name, err))
	}
	if a.ActivationsLimit != nil {
		n := *a.ActivationsLimit
		if n < 0 || n > 1<<31-1 {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: activations_limit %d is not a slot count", Name, n))
		}
		rec.ActivationsLimit = int(n)
	}
	return upstreams.ValidVerdict(rec)
}

func productSlug(a answer) string {
	if a.Product == nil {
		return ""
	}
	return a.Product.Slug
}

func parseTime(s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	return upstreams.ParseTime(*s)
}

// normalise compares failure sentences without minding case, spacing or
// the final full stop.
func normalise(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.TrimRight(s, ".")
}

// quote bounds a vendor sentence for an error message and keeps the key
// out of it.
func quote(s, key string) string {
	s = strings.ReplaceAll(s, key, "[key]")
	s = strings.ReplaceAll(s, strings.ToUpper(key), "[key]")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// Recheck implements upstreams.Rechecker: the verify call with the
// installation's recorded domain (which holds its slot already), or with
// no domain when none was recorded, which binds nothing.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product, Domain: req.Domain})
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

// UsesDomain implements upstreams.DomainAware: the answer depends on the
// domain sent, so concurrent questions share a call only per domain.
func (s *Source) UsesDomain() bool { return true }

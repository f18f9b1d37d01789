// Package keygen verifies Keygen licence keys with the validate-key action
// (activations) and rechecks them by reading the licence (recheck.go):
//
//	POST {base}/v1/accounts/{account}/licenses/actions/validate-key
//	Content-Type: application/vnd.api+json
//	Accept: application/vnd.api+json
//	{"meta":{"key":"<key>","scope":{"product":"<Keygen product id>"}}}
//
// validate-key needs no token unless the account is protected; a product
// or admin token may be configured and is sent as a Bearer token. With a
// token the licence type is the name of the licence's Keygen policy, read
// once an hour per policy (policy.go); without one it is
// upstreams.DefaultType. An environment, when configured, is sent as the
// Keygen-Environment header on every request: Keygen answers NOT_FOUND for
// a licence of an environment asked about without it.
//
// A background recheck never calls validate-key: it touches the licence
// (last_validated_at), sends the author a license.validation.* webhook per
// call, starts the term of FROM_FIRST_VALIDATION policies and keeps the
// licence counted as active for Keygen's billing. It reads the licence
// instead (recheck.go), which needs the token.
//
// Statuses that are not about the key: 401 is the token; 403 is the token's
// permissions, an inactive Keygen subscription or an IP block, reported as
// an author credential problem with that hint; 402 is the free tier's daily
// request limit, a pause like a 429 (the token is fine).
//
// Keygen answers HTTP 200 for every validation, valid or not: meta.valid,
// meta.code (VALID, NOT_FOUND, SUSPENDED, EXPIRED, ...) and, when the key
// exists, the licence in data (expiry, name, maxMachines, and its product
// in relationships). The Caddyfile ties our products to Keygen product ids
// (keygen_product). Any other status says nothing about the key: a 404 is
// an unknown account, and a 401 or 403 the configured token.
//
// Keygen checks a licence in a fixed order: suspension and bans, expiry
// under the REVOKE_ACCESS strategy, check-in, the scopes sent (product
// first), then the machine requirements of strict policies, and expiry
// under the other strategies last. This gateway keeps its own activations
// and never registers Keygen machines, so codes about machines (NO_MACHINE,
// NO_MACHINES, TOO_MANY_MACHINES, FINGERPRINT_SCOPE_*, ...) describe a
// licence that passed every check about the purchase and is valid here,
// unless its expiry has passed: Keygen stopped before looking at that.
package keygen

import (
	"bytes"
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
const Name = "keygen"

// minKeyLength is Keygen's own minimum for a licence key without a
// cryptographic scheme; signed keys are longer.
const minKeyLength = 6

// maxKeyLength is Keygen's maximum, 16 KiB: a signed key
// (key/<base64 payload>.<signature>) is some 500 characters with ED25519
// and 750 with RSA, and grows with its payload.
const maxKeyLength = upstreams.MaxAnyKeyLength

// mediaType is JSON:API's, which Keygen speaks.
const mediaType = "application/vnd.api+json"

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.keygen.sh, or a
	// self-hosted Keygen's (Caddyfile base_url). Required.
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products ties our product slugs to Keygen product ids (Caddyfile
	// keygen_product, the product's UUID).
	Products upstreams.ProductMap
	// Account is the Keygen account's id or slug (Caddyfile account).
	// Required.
	Account string
	// Token is an optional product or admin token, sent as a Bearer token
	// (Caddyfile token). Needed only for protected accounts. A product
	// token is refused (403) for keys of the account's other products.
	// Rechecks need it: they read the licence, which Keygen allows only
	// with a token.
	Token string
	// Environment is a Keygen environment's id or code, sent as the
	// Keygen-Environment header (Caddyfile environment). Empty: the
	// account's global environment.
	Environment string
}

// Source verifies Keygen licence keys.
type Source struct {
	endpoint    string // base URL + the account's validate-key path
	accountURL  string // base URL + /v1/accounts/{account}
	client      upstreams.Client
	products    upstreams.ProductMap
	auth        string // "Bearer <token>", or empty
	environment string
	policies    policyCache
}

// New checks cfg and builds the source.
func New(cfg Config) (*Source, error) {
	base, err := upstreams.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	account := strings.TrimSpace(cfg.Account)
	if account == "" {
		return nil, errors.New("account is required: the Keygen account id or slug")
	}
	if !isAccount(account) {
		return nil, fmt.Errorf("account: %q is not a Keygen account id or slug (letters, digits and dashes)", account)
	}
	token := strings.TrimSpace(cfg.Token)
	if upstreams.HasUnprintable(token) {
		// a header cannot carry it; the token itself is never echoed
		return nil, errors.New("token contains spaces, control or non-ASCII characters")
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	if err := checkProducts(cfg.Products); err != nil {
		return nil, err
	}
	env := strings.TrimSpace(cfg.Environment)
	if env != "" && !isAccount(env) {
		return nil, fmt.Errorf("environment: %q is not a Keygen environment id or code (letters, digits and dashes)", env)
	}
	accountURL := base + "/v1/accounts/" + url.PathEscape(account)
	s := &Source{
		endpoint:    accountURL + "/licenses/actions/validate-key",
		accountURL:  accountURL,
		client:      client,
		products:    cfg.Products,
		environment: env,
		policies:    policyCache{entries: map[string]policyEntry{}},
	}
	if token != "" {
		s.auth = "Bearer " + token
	}
	return s, nil
}

// isAccount accepts a UUID or a slug (an account's, an environment's
// code): letters, digits, dashes and underscores, nothing that could
// change the request path or a header.
func isAccount(s string) bool {
	if len(s) > 100 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkProducts refuses ids that could not be one or that are given to
// two products, which would make the licence's product ambiguous.
func checkProducts(m upstreams.ProductMap) error {
	return m.Check("keygen_product", true, func(id string) error {
		if id == "" || len(id) > 100 || upstreams.HasUnprintable(id) {
			return fmt.Errorf("keygen_product %q is not a Keygen product id", id)
		}
		return nil
	})
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return Name }

// CanonicalKey implements upstreams.Source. Keygen keys are whatever the
// author's policy makes them (C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3, a
// UUID, a signed key/...), and Keygen compares them case-sensitively: any
// printable ASCII key of 6 characters to 16 KiB is kept as typed.
func (s *Source) CanonicalKey(key string) (string, error) {
	k, err := upstreams.CleanKeyWithin(key, maxKeyLength)
	if err != nil {
		return "", err
	}
	if len(k) < minKeyLength {
		return "", fmt.Errorf("%w: a Keygen licence key has at least %d characters", upstreams.ErrKeyFormat, minKeyLength)
	}
	return k, nil
}

// errNoMapping is an Unknown cause: the gateway asked about a product that
// has no keygen_product, an author configuration gap, not the buyer's
// fault.
var errNoMapping = errors.New("no keygen_product is configured for the product")

// Verify implements upstreams.Source. The product scope is sent when the
// request's product has one Keygen product; otherwise the licence's own
// product is read from the answer (and sent on a second call if the
// policy requires the scope).
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	mappings, key, err := upstreams.Prepare(s, s.products, req, errNoMapping)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	scope := ""
	if len(mappings) == 1 {
		scope = mappings[0].VendorID
	}
	v, retry := s.validate(ctx, key, scope, mappings)
	if retry != "" {
		if v, retry = s.validate(ctx, key, retry, mappings); retry != "" {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: product scope required again with the scope sent", Name))
		}
	}
	return v
}

// headers sets what every request to Keygen carries.
func (s *Source) headers(hreq *http.Request) {
	hreq.Header.Set("Accept", mediaType)
	hreq.Header.Set("User-Agent", upstreams.UserAgent)
	if s.auth != "" {
		hreq.Header.Set("Authorization", s.auth)
	}
	if s.environment != "" {
		hreq.Header.Set("Keygen-Environment", s.environment)
	}
}

// refusal classifies the statuses that say nothing about the key; ok is
// false for the others.
func (s *Source) refusal(resp *upstreams.Response) (upstreams.Verdict, bool) {
	switch resp.Status {
	case http.StatusUnauthorized:
		// an invalid or revoked token, or a protected account without one
		return upstreams.UnknownVerdict(&upstreams.AuthorCredentialError{Source: Name, Status: resp.Status}), true
	case http.StatusForbidden:
		// the token may not do this (a product token asked about another
		// product's key), or the account's Keygen subscription is
		// inactive, or the gateway's IP address is blocked
		return upstreams.UnknownVerdict(&upstreams.AuthorCredentialError{Source: Name, Status: resp.Status,
			Hint: "check the token's permissions, the Keygen account's subscription and any IP restriction"}), true
	case http.StatusPaymentRequired:
		// the free tier's daily request limit: wait, the token is fine
		ra := upstreams.RetryAfter(resp.Header, s.client.Now())
		if ra <= 0 {
			ra = dailyLimitPause
		}
		v := upstreams.UnknownVerdict(&upstreams.RateLimitError{Source: Name, RetryAfter: ra})
		v.RetryAfter = ra
		return v, true
	case http.StatusTooManyRequests:
		return upstreams.RateLimited(Name, resp, s.client.Now()), true
	}
	return upstreams.Verdict{}, false
}

// dailyLimitPause is how long a 402 (the free tier's daily request limit)
// without a Retry-After leaves Keygen alone.
const dailyLimitPause = time.Hour

// request is the validate-key body.
type request struct {
	Meta requestMeta `json:"meta"`
}

type requestMeta struct {
	Key   string        `json:"key"`
	Scope *requestScope `json:"scope,omitempty"`
}

type requestScope struct {
	Product string `json:"product"`
}

// validate asks once. retry is the product id to send as the scope when
// Keygen answered PRODUCT_SCOPE_REQUIRED for a licence of one of ours.
func (s *Source) validate(ctx context.Context, key, scope string, mappings upstreams.ProductMap) (v upstreams.Verdict, retry string) {
	body := request{Meta: requestMeta{Key: key}}
	if scope != "" {
		body.Meta.Scope = &requestScope{Product: scope}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: encoding request: %w", Name, err)), ""
	}
	hreq, err := http.NewRequest(http.MethodPost, s.endpoint, bytes.NewReader(buf))
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, err)), ""
	}
	hreq.Header.Set("Content-Type", mediaType)
	s.headers(hreq)
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		// the key travels in the body, never in the URL an error quotes
		return upstreams.Unavailable(Name, nil, err), ""
	}
	return s.classify(ctx, resp, scope, mappings)
}

// validation is the validate-key answer, e.g.
//
//	{"meta":{"ts":"2024-01-01T00:00:00.000Z","valid":true,"detail":"is valid",
//	   "code":"VALID","scope":{"product":"4c6b..."}},
//	 "data":{"id":"b18e...","type":"licenses",
//	   "attributes":{"name":"Pro licence","key":"C1B6DE-...","expiry":"2025-01-01T00:00:00.000Z",
//	     "status":"ACTIVE","maxMachines":3, ...},
//	   "relationships":{"product":{"data":{"type":"products","id":"4c6b..."}},
//	     "policy":{"data":{"type":"policies","id":"8b2e..."}}, ...}}}
//
// An unknown key is {"meta":{"valid":false,"detail":"does not exist",
// "code":"NOT_FOUND"},"data":null}. attributes.status is for display only
// (Keygen: "not a replacement for license validation") and is not read.
type validation struct {
	Meta *struct {
		Valid *bool  `json:"valid"`
		Code  string `json:"code"`
	} `json:"meta"`
	Data *licence `json:"data"`
}

type licence struct {
	ID         string `json:"id"`
	Attributes struct {
		Name        string  `json:"name"`
		Key         string  `json:"key"`
		Expiry      *string `json:"expiry"`      // null: never
		MaxMachines *int    `json:"maxMachines"` // null: unlimited
		Status      string  `json:"status"`      // read by a recheck only (recheck.go)
		Suspended   bool    `json:"suspended"`
	} `json:"attributes"`
	Relationships struct {
		Product relationship `json:"product"`
		Policy  relationship `json:"policy"`
	} `json:"relationships"`
}

type relationship struct {
	Data *struct {
		ID string `json:"id"`
	} `json:"data"`
}

func (r relationship) id() string {
	if r.Data == nil {
		return ""
	}
	return r.Data.ID
}

// Validation codes (keygen.sh/docs/api/licenses, validate-key).
const (
	codeValid                = "VALID"
	codeNotFound             = "NOT_FOUND"
	codeSuspended            = "SUSPENDED"
	codeBanned               = "BANNED"
	codeExpired              = "EXPIRED"
	codeProductScopeMismatch = "PRODUCT_SCOPE_MISMATCH"
	codeProductScopeRequired = "PRODUCT_SCOPE_REQUIRED"
)

// usageCodes are the answers about what the licence has registered with
// Keygen (machines, their cores, memory and disk, processes, users), which
// this gateway does not use: it accounts activations itself. Keygen gives
// them only after the licence passed the ban, suspension, revoke-access
// expiry, check-in and scope checks (LicenseValidationService), so they
// say nothing about the purchase: a usage limit over at Keygen is no
// refund, and the gateway's own activation limit applies here.
// TOO_MUCH_MEMORY and TOO_MUCH_DISK are the policy's maxMemory and maxDisk
// over the licence's machines, checked with TOO_MANY_CORES; TOO_MANY_USERS
// is maxUsers over the Keygen users associated with the licence.
var usageCodes = map[string]bool{
	"NO_MACHINE":                 true,
	"NO_MACHINES":                true,
	"TOO_MANY_MACHINES":          true,
	"TOO_MANY_CORES":             true,
	"TOO_MUCH_MEMORY":            true,
	"TOO_MUCH_DISK":              true,
	"TOO_MANY_PROCESSES":         true,
	"TOO_MANY_USERS":             true,
	"MACHINE_SCOPE_REQUIRED":     true,
	"FINGERPRINT_SCOPE_REQUIRED": true,
	"FINGERPRINT_SCOPE_MISMATCH": true,
	"FINGERPRINT_SCOPE_EMPTY":    true,
}

// classify turns Keygen's answer into a verdict.
func (s *Source) classify(ctx context.Context, resp *upstreams.Response, scope string, mappings upstreams.ProductMap) (upstreams.Verdict, string) {
	if v, ok := s.refusal(resp); ok {
		return v, ""
	}
	if resp.Status != http.StatusOK {
		// 404 (no such account: check account), 400/422 (our request),
		// 5xx: nothing about the key
		return upstreams.Unavailable(Name, resp, nil), ""
	}
	var a validation
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer: %w", Name, err)), ""
	}
	if a.Meta == nil || a.Meta.Valid == nil || a.Meta.Code == "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: an answer without meta.valid and meta.code (check base_url)", Name)), ""
	}
	valid, code := *a.Meta.Valid, a.Meta.Code
	if code == codeNotFound {
		if valid {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: NOT_FOUND claiming a valid key", Name)), ""
		}
		return upstreams.InvalidVerdict(upstreams.NotFound), ""
	}
	// the key exists: the licence should say which product it is for
	productID := ""
	if a.Data != nil {
		productID = a.Data.Relationships.Product.id()
	}
	product, ok := mappings.Product(productID)
	if !valid && code == codeProductScopeMismatch {
		// the licence is not for the product sent as the scope, the only
		// one the request can be for; unless the licence says it is
		if scope == "" || ok {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: %s contradicting the scope sent", Name, code)), ""
		}
		return upstreams.InvalidVerdict(upstreams.WrongProduct), ""
	}
	if productID == "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %s answer without the licence's product", Name, codeFor(code))), ""
	}
	if !ok {
		// Keygen said which product the licence is for, and it is not
		// ours (or not the one asked about)
		return upstreams.InvalidVerdict(upstreams.WrongProduct), ""
	}
	if !valid && code == codeProductScopeRequired {
		if scope != "" {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: product scope required with one sent", Name)), ""
		}
		return upstreams.Verdict{}, productID
	}
	return s.verdict(ctx, valid, code, product, a.Data)
}

// verdict classifies the answer about a licence of one of our products.
func (s *Source) verdict(ctx context.Context, valid bool, code, product string, lic *licence) (upstreams.Verdict, string) {
	rec := upstreams.Record{Product: product, LicensedTo: strings.TrimSpace(lic.Attributes.Name), VendorID: lic.ID,
		Refs: upstreams.AddVendorID(nil, upstreams.IDLicence, lic.ID)}
	if m := lic.Attributes.MaxMachines; m != nil {
		if *m < 0 {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: negative maxMachines", Name)), ""
		}
		// the vendor's activation limit; 0 or none: the product's applies
		rec.ActivationsLimit = *m
	}
	var expiry *time.Time
	if lic.Attributes.Expiry != nil {
		t, err := upstreams.ParseTime(*lic.Attributes.Expiry)
		if err != nil {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: expiry: %w", Name, err)), ""
		}
		expiry = t
	}
	expired := expiry != nil && !expiry.After(s.client.Now())
	switch {
	case valid && code == codeValid:
		rec.ExpiresAt = expiry
		return s.valid(ctx, rec, lic), ""
	case valid && code == codeExpired:
		// the policy keeps expired licences valid (ALLOW_ACCESS or
		// MAINTAIN_ACCESS): the expiry only ends updates, like support
		rec.SupportUntil = expiry
		return s.valid(ctx, rec, lic), ""
	case valid:
		// valid with a finding, e.g. an allowed overage of machines;
		// Keygen stopped before checking a late expiry
		if expired {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: valid with code %s past the licence's expiry", Name, codeFor(code))), ""
		}
		rec.ExpiresAt = expiry
		return s.valid(ctx, rec, lic), ""
	}
	switch {
	case code == codeSuspended || code == codeBanned:
		return upstreams.InvalidVerdict(upstreams.Suspended), ""
	case code == codeExpired:
		return upstreams.InvalidVerdict(upstreams.Expired), ""
	case usageCodes[code]:
		if expired {
			// whether an expired licence stays valid is the policy's
			// expiration strategy, which Keygen did not get to
			return upstreams.UnknownVerdict(fmt.Errorf("%s: %s for a licence past its expiry", Name, codeFor(code))), ""
		}
		rec.ExpiresAt = expiry
		return s.valid(ctx, rec, lic), ""
	default:
		// OVERDUE (check-in), scopes this gateway cannot send, heartbeats,
		// codes added later: not a statement about the purchase
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unrecognised validation code %s", Name, codeFor(code))), ""
	}
}

// codeFor quotes a code for an error, bounded.
func codeFor(code string) string { return fmt.Sprintf("%.40q", code) }

// Interface guards
var _ upstreams.Source = (*Source)(nil)

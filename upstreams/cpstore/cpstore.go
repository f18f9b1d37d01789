// Package cpstore verifies CP- licence keys issued by an author's own
// self-hosted store (ChargePanda's licence server, seeds/003):
//
//	POST {base}/api/v1/licenses/verify
//	{"license_key": "CP-...", "domain": "...", "ip": "..."}
//
// The endpoint is public (no credentials). A 200 says the key is valid and
// names the product it was issued for; 403 and 404 carry a documented
// "reason"; 422 is Laravel's validation error for a malformed request.
//
// The store counts every new domain or IP that calls it as an activation of
// the key, so this adapter only calls it with the installation's real
// domain, and never when its answer could not be used. A recheck (Recheck)
// sends the domain and IP recorded at activation, which hold their slot
// already, and makes no call without a recorded domain.
package cpstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// name is the source's name in configuration and errors.
const name = "cpstore"

// verifyPath is appended to the base URL.
const verifyPath = "/api/v1/licenses/verify"

// PlaceholderIP is sent when the request carries no usable IP address. The
// store requires a syntactically valid ip but checks the connection's own
// address; its documentation's examples send this one.
const PlaceholderIP = "0.0.0.0"

var (
	// ErrNoProduct means the product has no cpstore_product configured:
	// the gateway's configuration is incomplete, not the buyer's key.
	ErrNoProduct = errors.New(name + ": no cpstore_product is configured for the product")
	// ErrNoDomain means the request has no domain. The store requires one
	// and spends an activation slot on every new domain, so a placeholder
	// would cost the buyer a slot.
	ErrNoDomain = errors.New(name + ": the store needs the installation's domain to verify a key")
)

// Config configures the adapter. Zero values get documented defaults.
type Config struct {
	// BaseURL is the store's root, e.g. https://store.example.com
	// (required; Caddyfile base_url).
	BaseURL string
	// Client sends the requests, reads the answers through its body limit
	// and tells the time (Retry-After dates); each request spends the
	// source's rate budget. The app gives the Client of the source's
	// resilience wrapper; zero values get upstreams.NewClient's defaults.
	Client upstreams.Client
	// Products maps our product slugs to the product names the store puts
	// on the keys it issues (Caddyfile, per product: cpstore_product). The
	// store snapshots the name at issue time, so a renamed product may need
	// its old name mapped too.
	Products upstreams.ProductMap
}

// Source verifies keys with the store's verify API.
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
	err = cfg.Products.Check("cpstore_product", true, func(product string) error {
		if strings.TrimSpace(product) == "" {
			return errors.New("cpstore_product is empty")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	return &Source{endpoint: base + verifyPath, client: client, products: cfg.Products}, nil
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return name }

// keyFormat describes the key in refusals.
const keyFormat = "not a store licence key (CP-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XXXXXX)"

// CanonicalKey implements upstreams.Source. A key is CP- and five groups of
// six letters or digits, the last one a signature; the store issues them
// in upper case (CP-AB12CD-34EF56-GH78IJ-90KLMN-XYZ123), so a key typed in
// lower case is upper-cased to match.
func (s *Source) CanonicalKey(key string) (string, error) {
	k, err := upstreams.CleanKeyWithin(key, upstreams.MaxKeyLength)
	if err != nil {
		return "", err
	}
	if len(k) != 3+5*7-1 {
		return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, keyFormat)
	}
	k = strings.ToUpper(k)
	if !strings.HasPrefix(k, "CP-") {
		return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, keyFormat)
	}
	for i := 3; i < len(k); i++ {
		c := k[i]
		if (i-3)%7 == 6 {
			if c != '-' {
				return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, keyFormat)
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return "", fmt.Errorf("%w: %s", upstreams.ErrKeyFormat, keyFormat)
		}
	}
	return k, nil
}

// verifyRequest is the documented request body.
type verifyRequest struct {
	LicenseKey string `json:"license_key"`
	Domain     string `json:"domain"`
	IP         string `json:"ip"`
}

// Verify implements upstreams.Source.
func (s *Source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	// Both checks come before the call: each call may spend one of the
	// buyer's activation slots at the store.
	mappings := s.products.For(req.Product)
	if len(mappings) == 0 {
		return upstreams.UnknownVerdict(ErrNoProduct)
	}
	domain := strings.TrimSpace(req.Domain)
	if domain == "" {
		return upstreams.UnknownVerdict(ErrNoDomain)
	}
	body, err := json.Marshal(verifyRequest{LicenseKey: req.Key, Domain: domain, IP: requestIP(req.IP)})
	if err != nil {
		return upstreams.Unavailable(name, nil, err)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return upstreams.Unavailable(name, nil, err)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	// Without it Laravel answers a validation error with a redirect.
	httpReq.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(ctx, httpReq)
	if err != nil {
		return upstreams.Unavailable(name, nil, err)
	}
	switch resp.Status {
	case http.StatusOK:
		return classifyValid(resp.Body, mappings)
	case http.StatusForbidden, http.StatusNotFound:
		return classifyRefusal(resp, req.Key)
	case http.StatusUnprocessableEntity:
		return malformed(resp)
	case http.StatusTooManyRequests:
		return upstreams.RateLimited(name, resp, s.client.Now())
	default:
		return upstreams.Unavailable(name, resp, nil)
	}
}

// requestIP is the installation's address when it is one the store's
// format check accepts, else PlaceholderIP: the store checks the
// connection's address, not this one, and a bad value would only earn a
// 422.
func requestIP(ip string) string {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || addr.Zone() != "" {
		return PlaceholderIP
	}
	return addr.Unmap().String()
}

// validAnswer is the documented 200 body.
type validAnswer struct {
	Valid    *bool   `json:"valid"`
	Product  string  `json:"product"`
	Expiry   *string `json:"expiry"`
	Lifetime bool    `json:"lifetime"`
}

// classifyValid reads a 200 answer; mappings are the products the key may
// belong to.
func classifyValid(body []byte, mappings upstreams.ProductMap) upstreams.Verdict {
	var a validAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer: %w", name, err))
	}
	if a.Valid == nil || !*a.Valid {
		// Documented as always true on a 200.
		return upstreams.UnknownVerdict(errors.New(name + `: HTTP 200 without "valid": true`))
	}
	if strings.TrimSpace(a.Product) == "" {
		return upstreams.UnknownVerdict(errors.New(name + ": valid answer names no product"))
	}
	product, ok := productFor(mappings, a.Product)
	if !ok {
		// The store validates the key, not its product: a key for another
		// of the author's products is valid there but not here.
		return upstreams.InvalidVerdict(upstreams.WrongProduct)
	}
	expires, err := expiresAt(a)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	return upstreams.ValidVerdict(upstreams.Record{Product: product, ExpiresAt: expires})
}

// productFor finds our slug for the store's product name. Names are
// compared without surrounding spaces or case: they are typed by hand (a
// manual key's product name is free text), and telling a buyer a key
// belongs to another product over a capital letter would be wrong.
func productFor(mappings upstreams.ProductMap, storeName string) (string, bool) {
	storeName = strings.TrimSpace(storeName)
	for _, m := range mappings {
		if strings.EqualFold(strings.TrimSpace(m.VendorID), storeName) {
			return m.Product, true
		}
	}
	return "", false
}

// expiresAt maps expiry and lifetime. A lifetime key never expires, even if
// a date came with it (documented as null then): the generous reading never
// cuts a buyer off, and a real expiry shows up as "License expired." at the
// next recheck. A plain date (the documented form) is a licence valid
// through that day, so it ends at 23:59:59 UTC, the last second of the day
// in Laravel's default time zone; policy.License then reports it as expired
// "on" that same date.
func expiresAt(a validAnswer) (*time.Time, error) {
	if a.Lifetime || a.Expiry == nil {
		return nil, nil
	}
	s := strings.TrimSpace(*a.Expiry)
	t, err := upstreams.ParseTime(s)
	if err != nil {
		return nil, fmt.Errorf("%s: expiry: %w", name, err)
	}
	if t != nil && len(s) == len(time.DateOnly) {
		end := t.Add(24*time.Hour - time.Second)
		t = &end
	}
	return t, nil
}

// refusals are the documented 403/404 reasons, normalised, per status.
var refusals = map[int]map[string]upstreams.Reason{
	http.StatusNotFound: {
		"license not found": upstreams.NotFound,
	},
	http.StatusForbidden: {
		// Our format check passed it, so the store's stricter one speaks:
		// no key of that shape exists there.
		"invalid license format":                               upstreams.NotFound,
		"license has been revoked":                             upstreams.Revoked,
		"license expired":                                      upstreams.Expired,
		"max activations exceeded or unrecognized environment": upstreams.DomainNotAllowed,
	},
}

// refusal is the documented 403/404 body.
type refusal struct {
	Valid  *bool  `json:"valid"`
	Reason string `json:"reason"`
}

// classifyRefusal reads a 403 or 404. Only a documented reason with its
// documented status is definitive: a 404 from a wrong base_url or a 403
// from a firewall in front of the store says nothing about the key.
func classifyRefusal(resp *upstreams.Response, key string) upstreams.Verdict {
	status := &upstreams.StatusError{Source: name, Status: resp.Status}
	var r refusal
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%w: unreadable answer: %w", status, err))
	}
	if r.Valid != nil && *r.Valid {
		return upstreams.UnknownVerdict(fmt.Errorf(`%w: refusal says "valid": true`, status))
	}
	if reason, ok := refusals[resp.Status][normalReason(r.Reason)]; ok {
		return upstreams.InvalidVerdict(reason)
	}
	return upstreams.UnknownVerdict(fmt.Errorf("%w: unrecognised reason %s", status, quote(r.Reason, key)))
}

// normalReason folds what a store version might vary: case, spaces, the
// final full stop.
func normalReason(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.TrimSuffix(s, ".")
}

// malformed reads a 422. The store documents it for a missing field or an
// ip that is not an IP address, both flaws of our request, never of the
// buyer's key (a key of the wrong shape is a documented 403), so it is
// Unknown; the fields it names help the author report it.
func malformed(resp *upstreams.Response) upstreams.Verdict {
	var v struct {
		Errors map[string]json.RawMessage `json:"errors"`
	}
	_ = json.Unmarshal(resp.Body, &v)
	var fields []string
	for f := range v.Errors {
		fields = append(fields, clip(f))
	}
	slices.Sort(fields)
	return upstreams.UnknownVerdict(fmt.Errorf("%w: the store refused the request as malformed (fields: %s); the buyer's key is not at fault",
		&upstreams.StatusError{Source: name, Status: resp.Status}, strings.Join(fields, ", ")))
}

// quote quotes vendor text for an error, bounded, and withheld if it
// repeats the licence key.
func quote(s, key string) string {
	if key != "" && strings.Contains(strings.ToUpper(s), strings.ToUpper(key)) {
		return "(withheld: it quotes the licence key)"
	}
	return fmt.Sprintf("%q", clip(s))
}

// clip bounds vendor text quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Recheck implements upstreams.Rechecker: the verify call with the
// installation's recorded domain and IP, never a new one (it would take a
// slot). Without a recorded domain it answers Unknown (ErrNoDomain) and
// asks nothing.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product, Domain: req.Domain, IP: req.IP})
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

// UsesDomain implements upstreams.DomainAware: the answer depends on the
// domain sent, so concurrent questions share a call only per domain.
func (s *Source) UsesDomain() bool { return true }

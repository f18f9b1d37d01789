package envato

// Sign in with Envato: the buyer portal's upstreams.BuyerDirectory.
//
//	GET  {base}/authorization?response_type=code&client_id=..&redirect_uri=..&state=..
//	POST {base}/token  grant_type=authorization_code&code=..&client_id=..&client_secret=..
//	GET  {base}/v3/market/buyer/list-purchases?page=N   Authorization: Bearer <access>
//	GET  {base}/v1/market/private/user/username.json     Authorization: Bearer <access>
//
// The app registered at build.envato.com/register needs the permissions
// "View your Envato Account username" and "List purchases you've made";
// Envato has no scope parameter: an app's permissions are fixed at
// registration. Access tokens last an hour (expires_in 3600); the portal
// needs one for a single page load and never refreshes it.
//
// Envato's API docs describe neither PKCE nor state: the authorization URL
// they show carries response_type, client_id and redirect_uri only. state
// is sent all the same, and the caller must refuse a callback whose state
// is not the browser's (whether Envato echoes it is to be confirmed with
// the live service); a PKCE challenge is sent when the caller gives a
// verifier, expecting Envato to ignore a parameter it does not know, and
// envatotest checks it, so nothing breaks should Envato start to.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/licensegate/licensegate/upstreams"
)

// Paths of the OAuth and buyer endpoints, relative to the base URL.
const (
	authorizationPath = "/authorization"
	tokenPath         = "/token"
	purchasesPath     = "/v3/market/buyer/list-purchases"
	usernamePath      = "/v1/market/private/user/username.json"
)

// DefaultMaxPages bounds the list-purchases pages read for one buyer.
const DefaultMaxPages = 20

// BuyerConfig configures Sign in with Envato. Zero values get documented
// defaults.
type BuyerConfig struct {
	// BaseURL is the API's root, https://api.envato.com (tests and
	// staging: another). Required.
	BaseURL string
	// Client sends every request, the token exchange included: give it
	// the Client of the Envato source's resilience wrapper, and wrap the
	// Buyer with Resilient.GuardBuyer, so the source's budget and breaker
	// apply.
	Client upstreams.Client
	// Products ties our product slugs to Envato item ids, as for the
	// source: purchases of other items are listed with no Product.
	Products upstreams.ProductMap
	// ClientID and ClientSecret are the OAuth app's (build.envato.com
	// /my-apps). Required.
	ClientID     string
	ClientSecret string
	// RedirectURL is the portal's callback, exactly as registered with the
	// app. Required.
	RedirectURL string
	// MaxPages bounds the list-purchases pages read (default
	// DefaultMaxPages).
	MaxPages int
}

// Buyer signs Envato buyers in and lists their purchases.
type Buyer struct {
	oauth    oauth2.Config
	base     string
	client   upstreams.Client
	products upstreams.ProductMap
	maxPages int
}

// NewBuyer checks cfg and builds the directory.
func NewBuyer(cfg BuyerConfig) (*Buyer, error) {
	base, err := upstreams.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := checkOAuthConfig(cfg); err != nil {
		return nil, err
	}
	client, err := upstreams.NewClient(cfg.Client)
	if err != nil {
		return nil, err
	}
	if err := checkProducts(cfg.Products); err != nil {
		return nil, err
	}
	maxPages := cfg.MaxPages
	if maxPages <= 0 {
		maxPages = DefaultMaxPages
	}
	return &Buyer{
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			// Envato takes the client credentials in the form. Saying so
			// also stops oauth2 from probing both styles, which would
			// spend a second call of the budget on a failed exchange.
			Endpoint: oauth2.Endpoint{
				AuthURL: base + authorizationPath, TokenURL: base + tokenPath,
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		base: base, client: client, products: cfg.Products, maxPages: maxPages,
	}, nil
}

// checkOAuthConfig names the option at fault; the secret is never echoed.
func checkOAuthConfig(cfg BuyerConfig) error {
	switch {
	case cfg.ClientID == "" || upstreams.HasUnprintable(cfg.ClientID):
		return errors.New("client_id is required, without spaces or control characters")
	case cfg.ClientSecret == "" || upstreams.HasUnprintable(cfg.ClientSecret):
		return errors.New("client_secret is required, without spaces or control characters")
	}
	u, err := url.Parse(cfg.RedirectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("redirect_uri %q is not an absolute http(s) URL", cfg.RedirectURL)
	}
	return nil
}

// AuthCodeURL implements upstreams.BuyerDirectory.
func (b *Buyer) AuthCodeURL(state, verifier string) string {
	if verifier == "" {
		return b.oauth.AuthCodeURL(state)
	}
	return b.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange implements upstreams.BuyerDirectory. The token POST goes
// through the source's Client (budget, body limit, no redirects); the
// refresh token Envato also sends is dropped.
func (b *Buyer) Exchange(ctx context.Context, code, verifier string) (upstreams.BuyerAccess, error) {
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	rt := &clientTransport{client: b.client}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: rt})
	tok, err := b.oauth.Exchange(ctx, code, opts...)
	if err != nil {
		return upstreams.BuyerAccess{}, b.exchangeError(err, rt.last, code)
	}
	return upstreams.NewBuyerAccess(tok.AccessToken, tok.Expiry), nil
}

// clientTransport sends oauth2's token request through an
// upstreams.Client and hands back the bounded answer. It keeps the last
// answer so that a token that could not be parsed is still classified by
// its status.
type clientTransport struct {
	client upstreams.Client
	last   *upstreams.Response
}

func (t *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Header.Set("User-Agent", upstreams.UserAgent)
	resp, err := t.client.Do(req.Context(), req)
	if err != nil {
		return nil, err
	}
	t.last = resp
	return &http.Response{
		StatusCode: resp.Status, Status: strconv.Itoa(resp.Status) + " " + http.StatusText(resp.Status),
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(resp.Body)),
		ContentLength: int64(len(resp.Body)), Request: req,
	}, nil
}

// exchangeError classifies a failed token exchange. oauth2's own error
// text quotes Envato's answer, so only the status and the RFC 6749 error
// code are kept, and the code is redacted from a transport error.
func (b *Buyer) exchangeError(err error, last *upstreams.Response, code string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if last != nil && last.Status >= 200 && last.Status < 300 {
			// answered, but no token could be read from it
			return upstreams.BuyerUnavailable(Name, last.Status, 0, fmt.Errorf("%s: unreadable token answer (HTTP %d)", Name, last.Status))
		}
		return b.transportError(upstreams.Redact(err, code, "[code]"))
	}
	resp := &upstreams.Response{Status: re.Response.StatusCode, Header: re.Response.Header}
	oauthCode := oauthErrorCode(re.ErrorCode)
	switch {
	case resp.Status == http.StatusUnauthorized || oauthCode == "invalid_client":
		return &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRequest, Status: resp.Status,
			Err: &upstreams.AuthorCredentialError{Source: Name, Status: resp.Status, Hint: "check envato_oauth client_id and client_secret"}}
	case oauthCode == "invalid_grant":
		// expired, replayed, issued to another client or redirect URI, or
		// a PKCE verifier that does not match: the buyer signs in again
		return &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRefused, Status: resp.Status,
			Err: fmt.Errorf("%s: token endpoint: %s", Name, oauthCode)}
	}
	return b.statusError(resp, "token endpoint: "+oauthCode)
}

// oauthErrorCode keeps an RFC 6749 error code only when it looks like one:
// it ends up in logs.
func oauthErrorCode(s string) string {
	if len(s) > 40 || strings.ContainsFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r == '_') }) {
		return "(unrecognised error code)"
	}
	return s
}

// statusError classifies an answer that is no success, for any buyer
// endpoint: 5xx, 429 and the unexpected are ErrBuyerUnavailable; 401 is
// the buyer's grant refused; 403 an app without the permission; other 4xx
// our request.
func (b *Buyer) statusError(resp *upstreams.Response, what string) error {
	status := resp.Status
	switch {
	case status == http.StatusTooManyRequests:
		ra := upstreams.RetryAfter(resp.Header, b.client.Now())
		return upstreams.BuyerUnavailable(Name, status, ra, &upstreams.RateLimitError{Source: Name, RetryAfter: ra})
	case status == http.StatusUnauthorized:
		return &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRefused, Status: status,
			Err: &upstreams.StatusError{Source: Name, Status: status}}
	case status == http.StatusForbidden:
		return &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRequest, Status: status,
			Err: &upstreams.AuthorCredentialError{Source: Name, Status: status,
				Hint: "the Envato app needs the permissions: View your Envato Account username, List purchases you've made"}}
	case status >= 400 && status < 500:
		return &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRequest, Status: status,
			Err: fmt.Errorf("%s: %s: %w", Name, what, &upstreams.StatusError{Source: Name, Status: status})}
	}
	return upstreams.BuyerUnavailable(Name, status, 0, &upstreams.StatusError{Source: Name, Status: status})
}

// transportError is a request that got no answer: a timeout, a refused
// connection, our budget, a redirect, an oversized body.
func (b *Buyer) transportError(err error) error {
	var budget *upstreams.BudgetError
	if errors.As(err, &budget) {
		return upstreams.BuyerUnavailable(Name, 0, budget.Wait, err)
	}
	return upstreams.BuyerUnavailable(Name, 0, 0, fmt.Errorf("%s: %w", Name, err))
}

// get sends an authorised GET for the buyer and returns a 200's body.
func (b *Buyer) get(ctx context.Context, access upstreams.BuyerAccess, path string) ([]byte, error) {
	if !access.Valid() {
		return nil, &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRefused, Err: errors.New("no access token")}
	}
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		return nil, &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrBuyerRequest, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+access.Token())
	req.Header.Set("User-Agent", upstreams.UserAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(ctx, req)
	if err != nil {
		return nil, b.transportError(upstreams.Redact(err, access.Token(), "[token]"))
	}
	if resp.Status != http.StatusOK {
		return nil, b.statusError(resp, path)
	}
	return resp.Body, nil
}

// unreadable is a 200 whose body is not what Envato documents: "try
// again", never "no purchases".
func unreadable(what string, err error) error {
	if err == nil {
		err = errors.New("missing fields")
	}
	return upstreams.BuyerUnavailable(Name, http.StatusOK, 0, fmt.Errorf("%s: unreadable %s: %w", Name, what, err))
}

// Username implements upstreams.BuyerDirectory: {"username":"..."}.
func (b *Buyer) Username(ctx context.Context, access upstreams.BuyerAccess) (string, error) {
	body, err := b.get(ctx, access, usernamePath)
	if err != nil {
		return "", err
	}
	var u struct {
		Username *string `json:"username"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return "", unreadable("username", err)
	}
	if u.Username == nil || strings.TrimSpace(*u.Username) == "" {
		return "", unreadable("username", nil)
	}
	return *u.Username, nil
}

// purchasesPage is one page of list-purchases:
//
//	{"count": 3, "results": [{"code": "<purchase code>", "license": "Regular License",
//	  "supported_until": "2027-03-09T01:54:28+11:00", "sold_at": "2026-09-07T10:54:28+10:00",
//	  "item": {"id": 17022701, "name": "SEO Studio", ...}, ...}]}
//
// count is the buyer's total; a page past the last has no results.
type purchasesPage struct {
	Count   *int            `json:"count"`
	Results []purchaseEntry `json:"results"`
}

type purchaseEntry struct {
	Code           string    `json:"code"`
	License        *string   `json:"license"`
	SupportedUntil *string   `json:"supported_until"`
	SoldAt         *string   `json:"sold_at"`
	Item           *saleItem `json:"item"`
}

// Purchases implements upstreams.BuyerDirectory. It reads pages until one
// is empty or count purchases were read, at most MaxPages pages; past
// that it returns what it read with ErrPurchasesTruncated.
func (b *Buyer) Purchases(ctx context.Context, access upstreams.BuyerAccess) ([]upstreams.Purchase, error) {
	var out []upstreams.Purchase
	seen := make(map[string]bool)
	read := 0
	for page := 1; page <= b.maxPages; page++ {
		p, err := b.purchasesPage(ctx, access, page)
		if err != nil {
			return nil, err
		}
		if len(p.Results) == 0 && p.Count != nil && read < *p.Count {
			// an empty page while the count says there is more: not the
			// end of the list, and never a reason to tell a buyer they
			// bought nothing
			return nil, unreadable("purchase list", errors.New("an empty page before the count was reached"))
		}
		read += len(p.Results)
		for _, e := range p.Results {
			if pu, ok := b.purchase(e); ok && !seen[pu.Key] {
				// a purchase made while paging may shift one into the
				// next page: keep it once
				seen[pu.Key] = true
				out = append(out, pu)
			}
		}
		if len(p.Results) == 0 || (p.Count != nil && len(seen) >= *p.Count) {
			return out, nil
		}
	}
	return out, &upstreams.BuyerError{Source: Name, Kind: upstreams.ErrPurchasesTruncated,
		Err: fmt.Errorf("%s: more than %d pages of purchases", Name, b.maxPages)}
}

func (b *Buyer) purchasesPage(ctx context.Context, access upstreams.BuyerAccess, page int) (*purchasesPage, error) {
	body, err := b.get(ctx, access, purchasesPath+"?"+url.Values{"page": {strconv.Itoa(page)}}.Encode())
	if err != nil {
		return nil, err
	}
	var p purchasesPage
	if err := json.Unmarshal(body, &p); err != nil {
		// never quote the body: it holds purchase codes
		return nil, unreadable("purchase list", errors.New("not the documented JSON"))
	}
	if p.Results == nil && p.Count == nil {
		return nil, unreadable("purchase list", nil)
	}
	return &p, nil
}

// purchase reads one entry. An entry without a purchase code in UUID form
// or a numeric item id can match no licence and is skipped; an unreadable
// date is left out rather than failing the buyer's whole list.
func (b *Buyer) purchase(e purchaseEntry) (upstreams.Purchase, bool) {
	key, err := upstreams.UUIDKey(e.Code)
	if err != nil || e.Item == nil {
		return upstreams.Purchase{}, false
	}
	itemID, ok := parseItemID(e.Item.ID)
	if !ok {
		return upstreams.Purchase{}, false
	}
	p := upstreams.Purchase{Key: key, VendorProductID: itemID, ItemName: e.Item.Name, Type: licenseType(deref(e.License))}
	p.Product, _ = b.products.Product(itemID)
	if e.SupportedUntil != nil {
		p.SupportedUntil, _ = upstreams.ParseTime(*e.SupportedUntil)
	}
	if e.SoldAt != nil {
		p.PurchasedAt, _ = upstreams.ParseTime(*e.SoldAt)
	}
	return p, true
}

// Interface guards
var _ upstreams.BuyerDirectory = (*Buyer)(nil)

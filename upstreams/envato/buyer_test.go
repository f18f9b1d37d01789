package envato

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/envato/envatotest"
	"github.com/licensegate/licensegate/upstreams/upstreamtest"
)

const (
	clientID     = "licensegate-portal-abc123"
	clientSecret = "Zx9clientSecretValue0000000000"
	redirectURL  = "https://licenses.example.com/account/auth/envato/callback"
	buyerName    = "happy_buyer"
	ourItem      = 17022701
	otherItem    = 555
)

// buyerPurchases is the test buyer's account: five purchases, two of an
// item of ours, over three pages of two.
var buyerPurchases = []envatotest.Purchase{
	{Code: "a67f4582-95d6-4019-81f3-75d1ebe3a071", ItemID: ourItem, ItemName: "Converter Pro", License: "Regular License",
		SupportedUntil: "2027-03-09T01:54:28+11:00", SoldAt: "2026-09-07T10:54:28+10:00"},
	{Code: "0f6b1c2d-3e4f-4a5b-8c7d-9e0f1a2b3c4d", ItemID: ourItem, ItemName: "Converter Pro", License: "Extended License",
		SoldAt: "2026-10-01T00:00:00Z"},
	{Code: "11111111-2222-4333-8444-555555555555", ItemID: otherItem, ItemName: "Someone Else's Theme", License: "Regular License"},
	{Code: "21111111-2222-4333-8444-555555555555", ItemID: otherItem, ItemName: "Someone Else's Theme", License: "Regular License"},
	{Code: "31111111-2222-4333-8444-555555555555", ItemID: otherItem, ItemName: "Someone Else's Theme", License: "Regular License"},
}

// newEnvato starts the counterpart with the test buyer, pages of two.
func newEnvato(t *testing.T) *envatotest.Server {
	srv := envatotest.New(t, clientID, clientSecret)
	srv.RedirectURI = redirectURL
	srv.PageSize = 2
	srv.AddBuyer(envatotest.Buyer{Username: buyerName, Purchases: buyerPurchases})
	return srv
}

func newBuyer(t *testing.T, base string, mod func(*BuyerConfig)) *Buyer {
	t.Helper()
	cfg := BuyerConfig{
		BaseURL: base, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL,
		Products: upstreams.ProductMap{{Product: "converter-pro", VendorID: fmt.Sprint(ourItem)}},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := NewBuyer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// authorize follows the authorization URL as a browser would and returns
// the callback's query.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorization answered %d, want 302", resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), redirectURL+"?") {
		t.Fatalf("redirected to %s, want the callback", loc.Redacted())
	}
	return loc.Query()
}

// signIn runs the browser half and the exchange; it returns the access.
func signIn(t *testing.T, b *Buyer) upstreams.BuyerAccess {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, b.AuthCodeURL("st4te", verifier))
	a, err := b.Exchange(context.Background(), q.Get("code"), verifier)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBuyerFlow(t *testing.T) {
	srv := newEnvato(t)
	b := newBuyer(t, srv.URL, nil)
	verifier := oauth2.GenerateVerifier()

	authURL, err := url.Parse(b.AuthCodeURL("st4te", verifier))
	if err != nil {
		t.Fatal(err)
	}
	q := authURL.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": redirectURL, "state": "st4te",
		"code_challenge_method": "S256", "code_challenge": oauth2.S256ChallengeFromVerifier(verifier),
	} {
		if q.Get(k) != want {
			t.Errorf("authorization URL %s=%q, want %q", k, q.Get(k), want)
		}
	}
	if authURL.Path != "/authorization" || strings.Contains(authURL.String(), clientSecret) {
		t.Errorf("authorization URL %s", authURL.Redacted())
	}

	back := authorize(t, authURL.String())
	if back.Get("state") != "st4te" || back.Get("code") == "" {
		t.Fatalf("callback query %v", back)
	}
	access, err := b.Exchange(context.Background(), back.Get("code"), verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !access.Valid() || access.Expiry().IsZero() {
		t.Fatalf("access %v expires %v", access, access.Expiry())
	}

	ps, err := b.Purchases(context.Background(), access)
	if err != nil {
		t.Fatal(err)
	}
	checkPurchases(t, ps)
	if n := srv.Hits("/v3/market/buyer/list-purchases"); n != 3 {
		t.Errorf("%d list-purchases pages read, want 3", n)
	}

	name, err := b.Username(context.Background(), access)
	if err != nil || name != buyerName {
		t.Errorf("Username = %q, %v; want %q", name, err, buyerName)
	}
}

func checkPurchases(t *testing.T, ps []upstreams.Purchase) {
	t.Helper()
	if len(ps) != len(buyerPurchases) {
		t.Fatalf("%d purchases, want %d", len(ps), len(buyerPurchases))
	}
	first := ps[0]
	if first.Key != buyerPurchases[0].Code || first.Product != "converter-pro" || !first.Known() ||
		first.VendorProductID != "17022701" || first.ItemName != "Converter Pro" || first.Type != "regular" {
		t.Errorf("first purchase %+v (key %q)", first, first.Key)
	}
	upstreamtest.CheckVerdict(t, upstreams.ValidVerdict(upstreams.Record{SupportUntil: first.SupportedUntil}),
		upstreams.Valid, "", upstreams.Record{SupportUntil: upstreamtest.Time("2027-03-08T14:54:28Z")})
	if first.PurchasedAt == nil || !first.PurchasedAt.Equal(time.Date(2026, 9, 7, 0, 54, 28, 0, time.UTC)) {
		t.Errorf("purchased at %v", first.PurchasedAt)
	}
	if ps[1].Type != "extended" || ps[1].SupportedUntil != nil {
		t.Errorf("second purchase %+v, support %v", ps[1], ps[1].SupportedUntil)
	}
	for _, p := range ps[2:] {
		if p.Known() || p.VendorProductID != "555" {
			t.Errorf("purchase of another item: %+v", p)
		}
	}
}

// TestPurchasesPageBound: past MaxPages the purchases read come back with
// ErrPurchasesTruncated.
func TestPurchasesPageBound(t *testing.T) {
	srv := newEnvato(t)
	b := newBuyer(t, srv.URL, func(c *BuyerConfig) { c.MaxPages = 2 })
	ps, err := b.Purchases(context.Background(), signIn(t, b))
	if !errors.Is(err, upstreams.ErrPurchasesTruncated) || len(ps) != 4 {
		t.Errorf("%d purchases, %v; want 4 and ErrPurchasesTruncated", len(ps), err)
	}
}

// TestExchangeRefusals: a replayed code, a wrong verifier, a wrong
// redirect and a wrong client secret are refused, each as what it is.
func TestExchangeRefusals(t *testing.T) {
	srv := newEnvato(t)
	b := newBuyer(t, srv.URL, nil)
	ctx := context.Background()

	verifier := oauth2.GenerateVerifier()
	code := authorize(t, b.AuthCodeURL("s", verifier)).Get("code")
	if _, err := b.Exchange(ctx, code, verifier); err != nil {
		t.Fatal(err)
	}
	_, err := b.Exchange(ctx, code, verifier)
	checkKind(t, "replayed code", err, upstreams.ErrBuyerRefused, code)

	code = authorize(t, b.AuthCodeURL("s", verifier)).Get("code")
	_, err = b.Exchange(ctx, code, oauth2.GenerateVerifier())
	checkKind(t, "wrong verifier", err, upstreams.ErrBuyerRefused, code)

	code = authorize(t, b.AuthCodeURL("s", "")).Get("code")
	_, err = b.Exchange(ctx, code, verifier) // a verifier for no challenge is ignored
	checkKind(t, "verifier without challenge", err, nil, code)

	code = authorize(t, b.AuthCodeURL("s", verifier)).Get("code")
	wrong := newBuyer(t, srv.URL, func(c *BuyerConfig) { c.ClientSecret = "not-the-secret" })
	_, err = wrong.Exchange(ctx, code, verifier)
	checkKind(t, "wrong client secret", err, upstreams.ErrBuyerRequest, code)
	if !upstreamtest.IsAuthorError(Name, http.StatusUnauthorized)(err) {
		t.Errorf("wrong client secret: %v is no AuthorCredentialError", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("error quotes the client secret: %v", err)
	}
	if n := srv.Hits("/token"); n != 5 {
		t.Errorf("%d token requests, want 5: one each, no auth style probe", n)
	}
}

// checkKind checks that err is of kind (nil: no error) and quotes none of
// secrets.
func checkKind(t *testing.T, what string, err, kind error, secrets ...string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	}
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %v, want %v", what, err, kind)
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q quotes a secret", what, err)
		}
	}
}

// TestBuyerOutages: every outage is ErrBuyerUnavailable for each call
// (401 is the grant refused), the 429 carries its Retry-After, and no
// error quotes a code, token or purchase code.
func TestBuyerOutages(t *testing.T) {
	for _, c := range []struct {
		name     string
		outage   envatotest.Outage
		kind     error // of Purchases and Username
		exchange error
		retry    time.Duration
	}{
		{"5xx", envatotest.ServerError, upstreams.ErrBuyerUnavailable, upstreams.ErrBuyerUnavailable, 0},
		{"timeout", envatotest.Hang, upstreams.ErrBuyerUnavailable, upstreams.ErrBuyerUnavailable, 0},
		{"429", envatotest.RateLimited, upstreams.ErrBuyerUnavailable, upstreams.ErrBuyerUnavailable, 30 * time.Second},
		{"garbage", envatotest.Garbage, upstreams.ErrBuyerUnavailable, upstreams.ErrBuyerUnavailable, 0},
		{"oversized", envatotest.Oversized, upstreams.ErrBuyerUnavailable, upstreams.ErrBuyerUnavailable, 0},
		{"401", envatotest.Unauthorized, upstreams.ErrBuyerRefused, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newEnvato(t)
			b := newBuyer(t, srv.URL, nil)
			access := signIn(t, b)
			verifier := oauth2.GenerateVerifier()
			code := authorize(t, b.AuthCodeURL("s", verifier)).Get("code")
			srv.SetOutage(c.outage)
			secrets := []string{code, access.Token(), buyerPurchases[0].Code}

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := b.Exchange(ctx, code, verifier)
			checkKind(t, "exchange", err, c.exchange, secrets...)
			checkRetry(t, err, c.retry)

			ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			ps, err := b.Purchases(ctx, access)
			checkKind(t, "purchases", err, c.kind, secrets...)
			checkRetry(t, err, c.retry)
			if ps != nil {
				t.Errorf("purchases %v with an error", ps)
			}

			ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err = b.Username(ctx, access)
			checkKind(t, "username", err, c.kind, secrets...)
		})
	}
}

func checkRetry(t *testing.T, err error, want time.Duration) {
	t.Helper()
	var be *upstreams.BuyerError
	if errors.As(err, &be) && be.RetryAfter != want {
		t.Errorf("RetryAfter %s, want %s", be.RetryAfter, want)
	}
}

// TestBuyerRevoked: a token Envato no longer knows is the grant refused.
func TestBuyerRevoked(t *testing.T) {
	srv := newEnvato(t)
	b := newBuyer(t, srv.URL, nil)
	access := signIn(t, b)
	srv.Revoke()
	_, err := b.Purchases(context.Background(), access)
	checkKind(t, "revoked", err, upstreams.ErrBuyerRefused, access.Token())
	_, err = b.Purchases(context.Background(), upstreams.BuyerAccess{})
	checkKind(t, "no access", err, upstreams.ErrBuyerRefused)
}

// buyerAsSource runs one buyer call as a Source's Verify, so that the
// shared outage scenarios apply: req.Key is the access token, which no
// cause may quote.
type buyerAsSource struct {
	b    *Buyer
	call func(b *Buyer, ctx context.Context, a upstreams.BuyerAccess) error
}

func (s buyerAsSource) Name() string                            { return Name }
func (s buyerAsSource) CanonicalKey(key string) (string, error) { return key, nil }
func (s buyerAsSource) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	err := s.call(s.b, ctx, upstreams.NewBuyerAccess(req.Key, time.Time{}))
	if err == nil || !errors.Is(err, upstreams.ErrBuyerUnavailable) {
		return upstreams.InvalidVerdict("not unavailable: " + upstreams.Reason(fmt.Sprint(err)))
	}
	v := upstreams.UnknownVerdict(err)
	var be *upstreams.BuyerError
	if errors.As(err, &be) {
		v.RetryAfter = be.RetryAfter
	}
	return v
}

func TestBuyerSharedOutages(t *testing.T) {
	calls := map[string]func(b *Buyer, ctx context.Context, a upstreams.BuyerAccess) error{
		"username": func(b *Buyer, ctx context.Context, a upstreams.BuyerAccess) error {
			_, err := b.Username(ctx, a)
			return err
		},
		"purchases": func(b *Buyer, ctx context.Context, a upstreams.BuyerAccess) error {
			_, err := b.Purchases(ctx, a)
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			upstreamtest.RunOutageCases(t, func(t *testing.T, o upstreamtest.Target) upstreams.Source {
				return buyerAsSource{b: newBuyer(t, o.BaseURL, func(c *BuyerConfig) { c.Client = o.UpstreamClient() }), call: call}
			}, upstreams.Request{Key: "accessTokenNeverQuoted0123456789"})
		})
	}
}

func TestBuyerConfig(t *testing.T) {
	upstreamtest.RunBaseURLCases(t, func(base string) error {
		_, err := NewBuyer(BuyerConfig{BaseURL: base, ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL})
		return err
	})
	for _, c := range []struct {
		name string
		mod  func(*BuyerConfig)
		want string
	}{
		{"no client id", func(c *BuyerConfig) { c.ClientID = "" }, "client_id"},
		{"secret with a space", func(c *BuyerConfig) { c.ClientSecret = "a b" }, "client_secret"},
		{"relative redirect", func(c *BuyerConfig) { c.RedirectURL = "/account/cb" }, "redirect_uri"},
		{"bad product", func(c *BuyerConfig) { c.Products = upstreams.ProductMap{{Product: "x", VendorID: "abc"}} }, "envato_item"},
	} {
		cfg := BuyerConfig{BaseURL: "https://api.envato.com", ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL}
		c.mod(&cfg)
		if _, err := NewBuyer(cfg); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "a b") {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

// TestBuyerRedaction: the formatted forms of an access and a purchase
// never show the token or the code.
func TestBuyerRedaction(t *testing.T) {
	a := upstreams.NewBuyerAccess("tok-secret-1234", time.Now())
	p := upstreams.Purchase{Key: buyerPurchases[0].Code, VendorProductID: "1"}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v %#v", a, a), fmt.Sprint(p), fmt.Sprintf("%+v %#v %v", p, p, []upstreams.Purchase{p})} {
		if strings.Contains(s, "tok-secret-1234") || strings.Contains(s, buyerPurchases[0].Code) {
			t.Errorf("formatted %q shows a secret", s)
		}
	}
}

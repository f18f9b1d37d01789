package upstreams

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BuyerDirectory is a source that can sign a buyer in with their
// marketplace account (OAuth 2.0 authorization code) and list the
// purchases that account owns: the buyer portal's "Sign in with Envato"
// (SPEC section 12). It is a capability of a source, found by a type
// assertion, like Rechecker.
//
// The access it hands out is for the request at hand only: the portal uses
// it for Purchases and Username and drops it. It is never stored, logged or
// put in a cookie, and neither is a purchase's Key.
//
// Errors wrap one of ErrBuyerUnavailable (try again shortly: the portal's
// 503 page, never "no purchases"), ErrBuyerRefused (the marketplace refused
// the buyer's grant: sign in again) or ErrBuyerRequest (our request or
// configuration is wrong: an author's problem). None quotes a code, key or
// token.
type BuyerDirectory interface {
	// AuthCodeURL is where to send the buyer's browser to sign in. state
	// is bound to the browser by the caller; verifier is the PKCE
	// verifier (oauth2.GenerateVerifier), sent as its S256 challenge, or
	// "" for none.
	AuthCodeURL(state, verifier string) string
	// Exchange trades the code the marketplace sent back (with the
	// verifier given to AuthCodeURL) for the buyer's access.
	Exchange(ctx context.Context, code, verifier string) (BuyerAccess, error)
	// Purchases lists every purchase of the signed-in buyer.
	Purchases(ctx context.Context, access BuyerAccess) ([]Purchase, error)
	// Username is the signed-in buyer's marketplace username, for display
	// and audit.
	Username(ctx context.Context, access BuyerAccess) (string, error)
}

// BuyerAccess is a signed-in buyer's short-lived access token. Its
// formatted forms never show the token, so a stray %v in a log line is
// harmless; and it has no exported field, so encoding/json writes none of
// it.
type BuyerAccess struct {
	token  string
	expiry time.Time
}

// NewBuyerAccess wraps a marketplace access token (a BuyerDirectory's
// Exchange builds it).
func NewBuyerAccess(token string, expiry time.Time) BuyerAccess {
	return BuyerAccess{token: token, expiry: expiry}
}

// Token is the bearer token, for the directory's own requests only.
func (a BuyerAccess) Token() string { return a.token }

// Expiry is when the marketplace said the token expires (zero: unknown).
func (a BuyerAccess) Expiry() time.Time { return a.expiry }

// Valid reports whether a holds a token.
func (a BuyerAccess) Valid() bool { return a.token != "" }

func (a BuyerAccess) String() string   { return "[buyer access]" }
func (a BuyerAccess) GoString() string { return "upstreams.BuyerAccess{[redacted]}" }

// Purchase is one purchase a signed-in buyer's account owns.
//
// A purchase of an item no product of the source maps (Product empty) is
// still listed: the caller decides whether to show "other purchases" or to
// drop them (the portal shows only its products' licences).
type Purchase struct {
	// Key is the purchase code (canonical form): a secret. It is matched
	// to licences by keyed hash and never stored, logged or rendered.
	Key string
	// Product is our product slug, empty when the item is none of ours.
	Product string
	// VendorProductID is the marketplace's item id.
	VendorProductID string
	// ItemName is the item's name at the marketplace.
	ItemName string
	// Type is the licence type (regular, extended, ...).
	Type string
	// SupportedUntil is the end of the support period; nil when none.
	SupportedUntil *time.Time
	// PurchasedAt is when the item was bought; nil when unknown.
	PurchasedAt *time.Time
}

// Known reports whether the purchase is of one of the source's products.
func (p Purchase) Known() bool { return p.Product != "" }

// String shows a purchase without its key.
func (p Purchase) String() string {
	return fmt.Sprintf("purchase of item %s (%s, product %q)", p.VendorProductID, p.Type, p.Product)
}

// GoString keeps %#v from printing the key.
func (p Purchase) GoString() string { return p.String() }

// The kinds of BuyerError, for errors.Is.
var (
	// ErrBuyerUnavailable: the marketplace is down, slow, rate-limiting,
	// answered something unreadable, or our budget or breaker held the
	// call back. The buyer should try again shortly.
	ErrBuyerUnavailable = errors.New("the marketplace is unavailable; try again shortly")
	// ErrBuyerRefused: the marketplace refused the buyer's grant (an
	// expired, replayed or revoked code or token). Signing in again fixes
	// it.
	ErrBuyerRefused = errors.New("the marketplace refused the sign-in")
	// ErrBuyerRequest: the marketplace refused our request (a wrong client
	// secret, a missing app permission, an API change). The author must
	// look; the buyer cannot fix it.
	ErrBuyerRequest = errors.New("the marketplace refused the request")
	// ErrPurchasesTruncated: the buyer owns more purchases than the
	// directory reads; the ones returned with it are the first ones.
	ErrPurchasesTruncated = errors.New("too many purchases to list")
)

// BuyerError is a BuyerDirectory's failure. errors.Is matches its Kind;
// Unwrap gives the cause (a *StatusError, *RateLimitError,
// *AuthorCredentialError, *BudgetError, a transport error, ...).
type BuyerError struct {
	Source string
	// Kind is ErrBuyerUnavailable, ErrBuyerRefused, ErrBuyerRequest or
	// ErrPurchasesTruncated.
	Kind error
	// Status is the marketplace's HTTP status, 0 when none was read.
	Status int
	// RetryAfter is how long the marketplace or our budget asked to wait.
	RetryAfter time.Duration
	// Err is the cause; it never holds a code, key or token.
	Err error
}

func (e *BuyerError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s buyer sign-in: %v", e.Source, e.Kind)
	}
	return fmt.Sprintf("%s buyer sign-in: %v: %v", e.Source, e.Kind, e.Err)
}

func (e *BuyerError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBuyerUnavailable) and its siblings work.
func (e *BuyerError) Is(target error) bool { return target == e.Kind }

// BuyerUnavailable builds the ErrBuyerUnavailable error for cause.
func BuyerUnavailable(source string, status int, retryAfter time.Duration, cause error) *BuyerError {
	return &BuyerError{Source: source, Kind: ErrBuyerUnavailable, Status: status, RetryAfter: retryAfter, Err: cause}
}

// GuardBuyer returns d with the resilience of r's source around its
// marketplace calls: the breaker (an open circuit answers
// ErrBuyerUnavailable at once; the portal's failures count towards it),
// the Retry-After pause, the concurrency bound and the per-call timeout.
// d must send its requests through the Client r built it with.
//
// A portal sign-in spends the background share of the rate budget, the
// one rechecks spend (see Budget): it never takes a call an activation
// needs, and when the share is empty it waits at most MaxWait, then
// answers ErrBuyerUnavailable with RetryAfter. Calls are not retried (the
// buyer's page says "try again") nor coalesced (each buyer's token is
// theirs), and nothing is cached.
func (r *Resilient) GuardBuyer(d BuyerDirectory) BuyerDirectory {
	return &guardedBuyer{r: r, d: d}
}

// BuyerClient is a Client spending r's rate budget, on r's clock, for the
// directory GuardBuyer wraps (its requests are counted with the source's).
func (r *Resilient) BuyerClient() Client {
	return Client{Now: r.cfg.Clock.Now, Budget: r.budget}
}

type guardedBuyer struct {
	r *Resilient
	d BuyerDirectory
}

func (g *guardedBuyer) AuthCodeURL(state, verifier string) string {
	return g.d.AuthCodeURL(state, verifier)
}

func (g *guardedBuyer) Exchange(ctx context.Context, code, verifier string) (a BuyerAccess, err error) {
	err = g.r.buyerCall(ctx, func(ctx context.Context) error {
		a, err = g.d.Exchange(ctx, code, verifier)
		return err
	})
	return a, err
}

func (g *guardedBuyer) Purchases(ctx context.Context, access BuyerAccess) (ps []Purchase, err error) {
	err = g.r.buyerCall(ctx, func(ctx context.Context) error {
		ps, err = g.d.Purchases(ctx, access)
		return err
	})
	return ps, err
}

func (g *guardedBuyer) Username(ctx context.Context, access BuyerAccess) (name string, err error) {
	err = g.r.buyerCall(ctx, func(ctx context.Context) error {
		name, err = g.d.Username(ctx, access)
		return err
	})
	return name, err
}

// buyerCall makes one guarded call, ask, on the background share of the
// budget. ask's error is returned as is; a call the breaker, the budget
// or a panic stopped is ErrBuyerUnavailable.
func (r *Resilient) buyerCall(ctx context.Context, ask func(context.Context) error) error {
	var err error
	v, _ := r.attemptCall(withRecheck(ctx), r.budget.RecheckWait, func(ctx context.Context) Verdict {
		err = ask(ctx)
		return buyerVerdict(err)
	})
	if err != nil {
		return err
	}
	if v.Outcome == Unknown && !errors.Is(v.Cause, errBuyerCall) {
		return BuyerUnavailable(r.src.Name(), 0, v.RetryAfter, v.Cause)
	}
	return nil
}

// errBuyerCall marks a buyer call's verdict as one the source's state
// learns nothing from (see buyerVerdict).
var errBuyerCall = errors.New("a buyer's call")

// buyerVerdict is what a buyer call tells the source's breaker and budget:
// nothing. A buyer's calls run on the buyer's own token, whose rate limit
// and failures say nothing of the author's: a buyer who spent their
// token's limit elsewhere, or whose purchase list times out, must not
// pause or break activations for everyone.
func buyerVerdict(error) Verdict { return UnknownVerdict(errBuyerCall) }

// Interface guards
var _ BuyerDirectory = (*guardedBuyer)(nil)

package upstreams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

// DefaultMaxBody bounds a source's response body: verify answers are small,
// and a huge one is a broken or hostile upstream.
const DefaultMaxBody = 1 << 20

// UserAgent identifies the gateway to marketplaces (Envato asks for a
// descriptive one).
const UserAgent = "licensegate/1 (+https://github.com/licensegate/licensegate)"

// ErrBodyTooLarge means a response exceeded the body limit; it was not read
// whole.
var ErrBodyTooLarge = errors.New("response body too large")

// StatusError is an HTTP answer a source could not classify.
type StatusError struct {
	Source string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered HTTP %d", e.Source, e.Status)
}

// RateLimitError means the source asked us to slow down.
type RateLimitError struct {
	Source     string
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s rate limit reached; retry after %s", e.Source, e.RetryAfter)
}

// AuthorCredentialError means the source refused the author's own
// credentials (a revoked personal token): nothing is wrong with the buyer's
// key, and the author must be alerted.
type AuthorCredentialError struct {
	Source string
	Status int
	// Hint is what the author should check; empty: the source's token.
	Hint string
}

func (e *AuthorCredentialError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "check the source's token"
	}
	return fmt.Sprintf("%s refused the author's credentials (HTTP %d): %s", e.Source, e.Status, hint)
}

// Response is an HTTP answer read through the body limit.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

type tracedPathKey struct{}

// WithTracedPath returns ctx for a call whose URL path holds a secret (a
// licence read by its key): the call's span records path, the request's
// path with the secret replaced, as url.path.
func WithTracedPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, tracedPathKey{}, path)
}

// tracedPath is the url.path a span of req records.
func tracedPath(ctx context.Context, req *http.Request) string {
	if p, ok := ctx.Value(tracedPathKey{}).(string); ok {
		return p
	}
	return req.URL.Path
}

// do sends req with client and reads at most maxBody bytes of the answer.
// A larger body is abandoned unread with ErrBodyTooLarge.
func do(ctx context.Context, client *http.Client, req *http.Request, maxBody int64) (*Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	ctx, span := startSpan(ctx, "HTTP "+req.Method, "")
	if span != nil {
		// the path only, and without a secret: a query may hold the
		// purchase code, a path a key (WithTracedPath)
		span.SetAttributes(attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()), attribute.String("url.path", tracedPath(ctx, req)))
		defer span.End()
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		if span != nil {
			span.SetStatus(codes.Error, "request failed")
		}
		return nil, err
	}
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, redirectError(resp)
	}
	if resp.ContentLength > maxBody {
		return nil, fmt.Errorf("%w: %d bytes announced", ErrBodyTooLarge, resp.ContentLength)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(body)) > maxBody {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, maxBody)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Client is how an HTTP adapter talks to its vendor, and the only way it
// should: every request it sends through Do spends one call of the
// source's rate budget first. The app builds each adapter with the Client
// of its resilience wrapper (BuildResilient); an adapter's own tests give
// it one without a budget.
type Client struct {
	// HTTP sends the requests. Default: a client with no timeout of its
	// own (the resilience wrapper sets deadlines through the context).
	HTTP *http.Client
	// MaxBody bounds a response body. Default: DefaultMaxBody.
	MaxBody int64
	// Now is the clock, for Retry-After dates. Default: time.Now.
	Now func() time.Time
	// Budget is the source's rate budget; nil spends none.
	Budget *Budget
}

// NewClient checks and defaults an adapter's Client: a MaxBody of 0 is
// DefaultMaxBody and a negative one is refused.
func NewClient(c Client) (Client, error) {
	if c.MaxBody < 0 {
		return Client{}, errors.New("max_body must not be negative")
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	if c.HTTP.CheckRedirect == nil {
		// A vendor API answers; it never sends us elsewhere. Following a
		// redirect would re-send a POST (and its licence key) wherever a
		// hostile or compromised store points, the gateway's own admin
		// endpoint included. The 3xx itself is an unknown outcome (do).
		h := *c.HTTP
		h.CheckRedirect = refuseRedirect
		c.HTTP = &h
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// refuseRedirect hands a 3xx back to the caller instead of following it.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// RedirectError is a vendor's 3xx answer, which is never followed: an
// unknown outcome. It names where the vendor pointed, without the query
// (which could carry anything, a key included).
type RedirectError struct {
	Status   int
	Location string // scheme, host and path only
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the source answered %d, a redirect to %s, which is not followed", e.Status, e.Location)
}

func redirectError(resp *http.Response) error {
	loc := "(no location)"
	if u, err := resp.Location(); err == nil {
		loc = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	return &RedirectError{Status: resp.StatusCode, Location: loc}
}

// Spend takes one call from the budget, waiting for it up to its MaxWait;
// Do calls it. A source that reaches its vendor some other way calls it
// before each request.
func (c Client) Spend(ctx context.Context) error {
	if c.Budget == nil {
		return nil
	}
	return c.Budget.Spend(ctx)
}

// Do spends one call of the budget, sends req with c.HTTP and reads at
// most c.MaxBody bytes of the answer. A refused budget is a *BudgetError;
// a larger body is abandoned unread with ErrBodyTooLarge.
func (c Client) Do(ctx context.Context, req *http.Request) (*Response, error) {
	if err := c.Spend(ctx); err != nil {
		return nil, err
	}
	return do(ctx, c.HTTP, req, c.MaxBody)
}

// ParseBaseURL checks a source's base_url, an absolute http or https URL
// with a host and no query, fragment or user info, and returns it without
// a trailing slash, so a path prefix (a staging proxy) is kept.
func ParseBaseURL(raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		return "", errors.New("base_url is required")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("base_url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("base_url: %q is not an http or https URL", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("base_url: %q has no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("base_url: %q must not hold a query, fragment or user info", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Redact removes secret (a licence key or purchase code) from err, writing
// mask in its place: a url.Error quotes the request URL, which may hold
// it. The chain is kept where it can be (errors.Is still sees timeouts and
// cancellation); otherwise only the redacted text is, since the original
// would still hold the secret for anyone unwrapping it.
func Redact(err error, secret, mask string) error {
	if err == nil || !strings.Contains(err.Error(), secret) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil && !strings.Contains(ue.Err.Error(), secret) {
		return &url.Error{Op: ue.Op, URL: strings.ReplaceAll(ue.URL, secret, mask), Err: ue.Err}
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, mask)}
}

// redactedError keeps only the redacted text of an error.
type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }

// RetryAfter parses a Retry-After header (seconds or an HTTP date) relative
// to now; 0 when absent or unparseable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Unavailable builds the Unknown verdict for a transport failure or an
// unclassifiable answer.
func Unavailable(source string, resp *Response, err error) Verdict {
	if err != nil {
		return UnknownVerdict(fmt.Errorf("%s: %w", source, err))
	}
	return UnknownVerdict(&StatusError{Source: source, Status: resp.Status})
}

// RateLimited builds the Unknown verdict for a 429.
func RateLimited(source string, resp *Response, now time.Time) Verdict {
	ra := RetryAfter(resp.Header, now)
	v := UnknownVerdict(&RateLimitError{Source: source, RetryAfter: ra})
	v.RetryAfter = ra
	return v
}

// ProductMapping ties one of our product slugs to a source's own product
// identifier (an Envato item id, an AppTrovo slug, a list token, ...).
type ProductMapping struct {
	Product  string // our slug
	VendorID string // the source's identifier
}

// ProductMap is a source's product mappings, in configuration order.
type ProductMap []ProductMapping

// Product returns our slug for a vendor identifier.
func (m ProductMap) Product(vendorID string) (string, bool) {
	for _, p := range m {
		if p.VendorID == vendorID {
			return p.Product, true
		}
	}
	return "", false
}

// For returns the mappings to try for a request: the named product's, or
// all of them when the request names none.
func (m ProductMap) For(product string) ProductMap {
	if product == "" {
		return m
	}
	var out ProductMap
	for _, p := range m {
		if p.Product == product {
			out = append(out, p)
		}
	}
	return out
}

// Check refuses mappings that could never match, naming the source's
// Caddyfile option: an empty product slug, a vendor id vendorID refuses
// (its error follows "product <slug>: "), and, when unique, a vendor id
// given to two products, which would make an answer's product ambiguous.
func (m ProductMap) Check(option string, unique bool, vendorID func(id string) error) error {
	seen := make(map[string]string)
	for _, p := range m {
		if p.Product == "" {
			return fmt.Errorf("%s %q: the product slug is empty", option, p.VendorID)
		}
		if err := vendorID(p.VendorID); err != nil {
			return fmt.Errorf("product %s: %w", p.Product, err)
		}
		if other, dup := seen[p.VendorID]; unique && dup && other != p.Product {
			return fmt.Errorf("%s %s is given to both %s and %s", option, p.VendorID, other, p.Product)
		}
		seen[p.VendorID] = p.Product
	}
	return nil
}

// HasUnprintable reports whether s holds a space, a control or a non-ASCII
// character: a credential or vendor id pasted with one is a copy mistake
// that would fail every call (and a header cannot carry some of them).
func HasUnprintable(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f })
}

// IsNumericID reports whether s is a vendor's numeric id (an Envato item,
// a Lemon Squeezy product): a positive decimal number of at most 19
// digits, without a leading zero.
func IsNumericID(s string) bool {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseTime reads the date formats vendors use: RFC 3339, a plain date, or
// "2006-01-02 15:04:05" (UTC). Empty and "null" are no time.
func ParseTime(s string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "null" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, fmt.Errorf("unrecognised time %q", s)
}

// UUIDKey checks the UUID key format marketplaces use (Envato, AppTrovo,
// Lemon Squeezy) and returns it lower-cased.
func UUIDKey(key string) (string, error) {
	k, err := CleanKeyWithin(key, MaxKeyLength)
	if err != nil {
		return "", err
	}
	if len(k) != 36 {
		return "", fmt.Errorf("%w: not a UUID", ErrKeyFormat)
	}
	k = strings.ToLower(k)
	for i, c := range k {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", fmt.Errorf("%w: not a UUID", ErrKeyFormat)
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", fmt.Errorf("%w: not a UUID", ErrKeyFormat)
			}
		}
	}
	return k, nil
}

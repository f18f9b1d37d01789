package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

func init() {
	caddy.RegisterModule(Exchange{})
}

// Exchange is the installer API (SPEC section 4). Mounted under any
// prefix, it answers on the last path segment: POST activate, token,
// deactivate and move; GET status and jwks.json. It answers every request
// itself and never calls the next handler.
//
// Per client (as Caddy determines its address, honouring trusted_proxies;
// an IPv6 client counts by its /64) it limits requests to every endpoint
// and failed activations, and per source it bounds the activations of
// unknown keys that reach the marketplace, answering 429 rate_limited with
// Retry-After beyond them. The limits are kept in memory by each instance.
type Exchange struct {
	// RateLimit bounds requests per client IP, as "<calls>/<period>".
	// Default: 120/m (AppTrovo's documented installer limit).
	RateLimit string `json:"rate_limit,omitempty"`
	// FailedLimit bounds failed activations (any 4xx) per client IP, so a
	// key cannot be guessed by brute force. A call is reserved before the
	// activation and given back when it succeeds. Default: 20/10m.
	FailedLimit string `json:"failed_limit,omitempty"`
	// FailedSourceLimit bounds, per source and for all clients together,
	// the activations of keys the store does not know that the source
	// does not vindicate, so a flood of random well-formed keys from many
	// addresses cannot spend the marketplace's rate budget honest
	// installers need: past it, unknown keys are answered 429 before any
	// marketplace call (keys already stored are unaffected, valid keys
	// give their call back). Half of it is a reserve only client networks
	// without a recent failure may draw on, so a flood from many networks
	// leaves honest first activations their calls. Not applied to the
	// static source. Default: 30/m.
	FailedSourceLimit string `json:"failed_source_limit,omitempty"`
	// BodyTimeout bounds how long a request body may take to arrive: a
	// client trickling its 64 KiB a byte at a time does not hold a
	// connection and a handler for minutes. Past it: 408 request_timeout.
	// Default: 10s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	svc      *gateway.Service
	logger   *zap.Logger
	requests *ipLimiter
	failures *ipLimiter
	budget   *gateway.FailureBudget
}

// CaddyModule returns the Caddy module information.
func (Exchange) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_exchange",
		New: func() caddy.Module { return new(Exchange) },
	}
}

// Provision gets the licensegate app's service.
func (e *Exchange) Provision(ctx caddy.Context) error {
	e.logger = ctx.Logger()
	app, err := licensegateApp(ctx, "license_exchange")
	if err != nil {
		return err
	}
	e.svc = app.Service()
	req, err := parseRateOr("rate_limit", e.RateLimit, "120/m")
	if err != nil {
		return err
	}
	fail, err := parseRateOr("failed_limit", e.FailedLimit, "20/10m")
	if err != nil {
		return err
	}
	src, err := parseRateOr("failed_source_limit", e.FailedSourceLimit, "30/m")
	if err != nil {
		return err
	}
	if e.BodyTimeout != 0 && time.Duration(e.BodyTimeout) < time.Second {
		return fmt.Errorf("license_exchange: body_timeout: %s is shorter than 1s", time.Duration(e.BodyTimeout))
	}
	e.requests, e.failures = newIPLimiter(req), newIPLimiter(fail)
	e.budget = gateway.NewFailureBudget(src, nil)
	return nil
}

// licensegateApp returns the configured licensegate app. The handlers
// never make one up: an app nobody configured would have no products and a
// secret nobody backs up.
func licensegateApp(ctx caddy.Context, directive string) (*App, error) {
	app, err := ctx.AppIfConfigured("licensegate")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s: the licensegate global option is not configured: %w", directive, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", directive, err)
	}
	return app.(*App), nil
}

func parseRateOr(option, v, def string) (upstreams.Rate, error) {
	if v == "" {
		v = def
	}
	r, err := upstreams.ParseRate(v)
	if err != nil {
		return upstreams.Rate{}, fmt.Errorf("license_exchange: %s: %w", option, err)
	}
	return r, nil
}

// defaultBodyTimeout is body_timeout's default.
const defaultBodyTimeout = 10 * time.Second

// ServeHTTP dispatches on the last path segment.
func (e *Exchange) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method == http.MethodPost {
		// Bounds the body's arrival (a request already read goes on past
		// it: the deadline only fails reads). A writer that cannot set
		// one (a test recorder) leaves the server's own timeouts.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(durationOr(e.BodyTimeout, defaultBodyTimeout)))
	}
	op := path.Base(r.URL.Path)
	method := http.MethodPost
	if op == "status" || op == "jwks.json" {
		method = http.MethodGet
	}
	switch op {
	case "activate", "token", "deactivate", "move", "status", "jwks.json":
	default:
		writeProblem(w, e.logger, &gateway.Error{Code: gateway.CodeNotFound, Detail: "No such licence endpoint."})
		return nil
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		writeProblem(w, e.logger, &gateway.Error{Code: gateway.CodeMethodNotAllowed, Detail: "Use " + method + " for " + op + "."})
		return nil
	}
	if ok, wait := e.requests.allow(policy.RateKey(clientIP(r))); !ok {
		writeProblem(w, e.logger, rateLimited(wait))
		return nil
	}
	switch op {
	case "activate":
		e.activate(w, r)
	case "token":
		e.token(w, r)
	case "deactivate":
		e.deactivate(w, r)
	case "move":
		e.move(w, r)
	case "status":
		e.status(w, r)
	case "jwks.json":
		e.jwks(w, r)
	}
	return nil
}

func rateLimited(wait time.Duration) *gateway.Error {
	return &gateway.Error{Code: gateway.CodeRateLimited, Detail: "Too many requests from this address. Please wait and try again.", RetryAfter: wait}
}

// activate reserves a failed-activation call before the work (a
// concurrent burst cannot overdraw it) and gives it back unless the
// activation failed by the client's doing (a 4xx other than a source's
// budget running out).
func (e *Exchange) activate(w http.ResponseWriter, r *http.Request) {
	key := policy.RateKey(clientIP(r))
	if ok, wait := e.failures.allow(key); !ok {
		writeProblem(w, e.logger, rateLimited(wait))
		return
	}
	err := e.doActivate(w, r)
	if !countsAsFailure(err) {
		e.failures.refund(key)
	}
	if err != nil {
		writeProblem(w, e.logger, err)
	}
}

// countsAsFailure reports whether an activation's outcome counts toward
// failed_limit.
func countsAsFailure(err error) bool {
	if err == nil {
		return false
	}
	code := gateway.AsError(err).Code
	st := statusFor[code]
	return st >= 400 && st < 500 && code != gateway.CodeRateLimited
}

func (e *Exchange) doActivate(w http.ResponseWriter, r *http.Request) error {
	fields, err := readForm(r)
	if err != nil {
		return err
	}
	req, err := activateRequest(fields)
	if err != nil {
		return err
	}
	req.ClientIP, req.Budget = clientIP(r), e.budget
	a, err := e.svc.ActivateIdempotent(r.Context(), r.Header.Get("Idempotency-Key"), req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if a.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, a)
	return nil
}

// token answers POST token (grant_type=refresh_token). Its refusals
// carry RFC 6749's error member beside the code (oauthErrorFor).
func (e *Exchange) token(w http.ResponseWriter, r *http.Request) {
	toks, oauthError, err := e.doToken(r)
	if err != nil {
		if oauthError == "" {
			oauthError = oauthErrorFor(err)
		}
		writeOAuthProblem(w, e.logger, err, oauthError)
		return
	}
	writeJSON(w, http.StatusOK, toks)
}

// doToken refreshes; a refusal comes with its OAuth2 error code when the
// request itself decides it ("" otherwise).
func (e *Exchange) doToken(r *http.Request) (*gateway.Tokens, string, error) {
	fields, err := readForm(r)
	if err != nil {
		return nil, "", err
	}
	switch gt := fields["grant_type"]; gt {
	case "refresh_token":
	case "":
		return nil, oauthInvalidRequest, gateway.Validation("grant_type", "is required")
	default:
		return nil, oauthUnsupportedGrantType, gateway.Validation("grant_type", "must be refresh_token")
	}
	if fields["refresh_token"] == "" {
		return nil, oauthInvalidRequest, gateway.Validation("refresh_token", "is required")
	}
	toks, err := e.svc.Refresh(r.Context(), fields["refresh_token"])
	return toks, "", err
}

// credential returns the Bearer token, or else a refresh_token field.
func (e *Exchange) credential(r *http.Request, fields map[string]string) string {
	if t, ok := bearer(r); ok {
		return t
	}
	return fields["refresh_token"]
}

// noCredential marks err when the request presented no credential, so a
// 401 challenges with a bare Bearer (RFC 6750 section 3.1).
func noCredential(err error, cred string) error {
	if cred != "" {
		return err
	}
	return errors.Join(err, errNoBearer)
}

func (e *Exchange) deactivate(w http.ResponseWriter, r *http.Request) {
	fields, err := readForm(r)
	if err != nil {
		writeProblem(w, e.logger, err)
		return
	}
	cred := e.credential(r, fields)
	if err := e.svc.Deactivate(r.Context(), cred, clientIP(r)); err != nil {
		writeProblem(w, e.logger, noCredential(err, cred))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Exchange) move(w http.ResponseWriter, r *http.Request) {
	fields, err := readForm(r)
	if err != nil {
		writeProblem(w, e.logger, err)
		return
	}
	cred := e.credential(r, fields)
	a, err := e.svc.Move(r.Context(), gateway.MoveRequest{Token: cred, Domain: fields["domain"], ClientIP: clientIP(r)})
	if err != nil {
		writeProblem(w, e.logger, noCredential(err, cred))
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (e *Exchange) status(w http.ResponseWriter, r *http.Request) {
	t, _ := bearer(r)
	v, err := e.svc.Status(r.Context(), t)
	if err != nil {
		writeProblem(w, e.logger, noCredential(err, t))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		License *gateway.LicenseView `json:"license"`
	}{v})
}

func (e *Exchange) jwks(w http.ResponseWriter, r *http.Request) {
	if err := e.svc.EnsureKeys(r.Context()); err != nil {
		writeProblem(w, e.logger, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(e.svc.JWKS())
}

// bearer returns the request's Bearer token.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// clientIP is the connection's address as Caddy determined it (honouring
// trusted_proxies).
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Exchange)(nil)
	_ caddyhttp.MiddlewareHandler = (*Exchange)(nil)
)

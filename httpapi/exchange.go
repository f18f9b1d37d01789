package httpapi

import (
	"errors"
	"net/http"
	"path"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
)

// Exchange is the installer API (SPEC section 4) as a net/http handler.
// Mounted under any prefix, it answers on the last path segment: POST
// activate, token, deactivate, move and status/refresh; GET status and
// jwks.json.
//
// Per client network (policy.RateKey of ClientIP) it limits requests to
// every endpoint (Requests) and failed activations (Failures), and per
// source it bounds the activations of unknown keys that reach the
// marketplace (Budget), answering 429 rate_limited with Retry-After
// beyond them.
type Exchange struct {
	Service  *gateway.Service
	Logger   *zap.Logger
	Requests *Limiter // nil: no per-client request limit
	Failures *Limiter // nil: no per-client failed-activation limit
	Budget   *gateway.FailureBudget
	// BodyTimeout bounds how long a POST body may take to arrive (0:
	// DefaultBodyTimeout).
	BodyTimeout time.Duration
	// ClientIP is where a request came from (nil: RemoteHost).
	ClientIP ClientAddr
}

// DefaultBodyTimeout is the body timeout of an Exchange that sets none.
const DefaultBodyTimeout = 10 * time.Second

func (e *Exchange) bodyTimeout() time.Duration {
	if e.BodyTimeout > 0 {
		return e.BodyTimeout
	}
	return DefaultBodyTimeout
}

func (e *Exchange) clientIP(r *http.Request) string {
	if e.ClientIP == nil {
		return RemoteHost(r)
	}
	return e.ClientIP(r)
}

// endpoint is one operation of the installer API: its method and handler.
type endpoint struct {
	method string
	serve  func(*Exchange, http.ResponseWriter, *http.Request)
}

// endpoints are the installer API's operations, by last path segment
// (status/refresh by its last two).
var endpoints = map[string]endpoint{
	"activate":       {http.MethodPost, (*Exchange).activate},
	"addons":         {http.MethodPost, (*Exchange).addons},
	"token":          {http.MethodPost, (*Exchange).token},
	"deactivate":     {http.MethodPost, (*Exchange).deactivate},
	"move":           {http.MethodPost, (*Exchange).move},
	"status":         {http.MethodGet, (*Exchange).status},
	"status/refresh": {http.MethodPost, (*Exchange).refreshStatus},
	"jwks.json":      {http.MethodGet, (*Exchange).jwks},
}

// ServeHTTP dispatches on the last path segment.
func (e *Exchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		// Bounds the body's arrival (a request already read goes on past
		// it: the deadline only fails reads). A writer that cannot set
		// one (a test recorder) leaves the server's own timeouts.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(e.bodyTimeout()))
	}
	op := operation(r.URL.Path)
	ep, ok := endpoints[op]
	if !ok {
		WriteProblem(w, e.Logger, &gateway.Error{Code: gateway.CodeNotFound, Detail: "No such licence endpoint."})
		return
	}
	if r.Method != ep.method && !(ep.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", ep.method)
		WriteProblem(w, e.Logger, &gateway.Error{Code: gateway.CodeMethodNotAllowed, Detail: "Use " + ep.method + " for " + op + "."})
		return
	}
	if ok, wait := e.Requests.Allow(policy.RateKey(e.clientIP(r))); !ok {
		WriteProblem(w, e.Logger, rateLimited(wait))
		return
	}
	ep.serve(e, w, r)
}

func rateLimited(wait time.Duration) *gateway.Error {
	return &gateway.Error{Code: gateway.CodeRateLimited, Detail: "Too many requests from this address. Please wait and try again.", RetryAfter: wait}
}

// activate reserves a failed-activation call before the work (a
// concurrent burst cannot overdraw it) and gives it back unless the
// activation failed by the client's doing (a 4xx other than a source's
// budget running out).
func (e *Exchange) activate(w http.ResponseWriter, r *http.Request) {
	e.withFailureLimit(w, r, e.doActivate)
}

// addons attaches an add-on licence (SPEC section 14): a key put to a
// source like an activation's, under the same failed_limit.
func (e *Exchange) addons(w http.ResponseWriter, r *http.Request) {
	e.withFailureLimit(w, r, e.doAddons)
}

// withFailureLimit runs op, which puts a licence key to the sources,
// under the client's failed-activation limit, and answers its error.
func (e *Exchange) withFailureLimit(w http.ResponseWriter, r *http.Request, op func(http.ResponseWriter, *http.Request) error) {
	key := policy.RateKey(e.clientIP(r))
	if ok, wait := e.Failures.Allow(key); !ok {
		WriteProblem(w, e.Logger, rateLimited(wait))
		return
	}
	err := op(w, r)
	if !countsAsFailure(err) {
		e.Failures.Refund(key)
	}
	if err != nil {
		WriteProblem(w, e.Logger, err)
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
	fields, err := ReadForm(r)
	if err != nil {
		return err
	}
	req, err := activateRequest(fields)
	if err != nil {
		return err
	}
	req.ClientIP, req.Budget = e.clientIP(r), e.Budget
	a, err := e.Service.ActivateIdempotent(r.Context(), r.Header.Get("Idempotency-Key"), req)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if a.Created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, a)
	return nil
}

func (e *Exchange) doAddons(w http.ResponseWriter, r *http.Request) error {
	fields, err := ReadForm(r)
	if err != nil {
		return err
	}
	act, err := activateRequest(fields)
	if err != nil {
		return err
	}
	cred := e.credential(r, fields)
	req := gateway.AddonRequest{Token: cred, Key: act.Key, Product: act.Product, ClientIP: e.clientIP(r), Budget: e.Budget}
	a, err := e.Service.AttachAddonIdempotent(r.Context(), r.Header.Get("Idempotency-Key"), req)
	if err != nil {
		return noCredential(err, cred)
	}
	status := http.StatusOK
	if a.Created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, a)
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
		WriteOAuthProblem(w, e.Logger, err, oauthError)
		return
	}
	WriteJSON(w, http.StatusOK, toks)
}

// doToken refreshes; a refusal comes with its OAuth2 error code when the
// request itself decides it ("" otherwise).
func (e *Exchange) doToken(r *http.Request) (*gateway.Tokens, string, error) {
	fields, err := ReadForm(r)
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
	toks, err := e.Service.Refresh(r.Context(), fields["refresh_token"])
	return toks, "", err
}

// credential returns the Bearer token, or else a refresh_token field.
func (e *Exchange) credential(r *http.Request, fields map[string]string) string {
	if t, ok := Bearer(r); ok {
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
	return errors.Join(err, ErrNoBearer)
}

// withCredential reads the body and the request's credential (the Bearer
// token, else a refresh_token field) and runs op with them; a refusal is
// answered as a problem, challenging with a bare Bearer when no
// credential came. op writes the success itself.
func (e *Exchange) withCredential(w http.ResponseWriter, r *http.Request, op func(fields map[string]string, cred string) error) {
	fields, err := ReadForm(r)
	if err != nil {
		WriteProblem(w, e.Logger, err)
		return
	}
	cred := e.credential(r, fields)
	if err := op(fields, cred); err != nil {
		WriteProblem(w, e.Logger, noCredential(err, cred))
	}
}

func (e *Exchange) deactivate(w http.ResponseWriter, r *http.Request) {
	e.withCredential(w, r, func(_ map[string]string, cred string) error {
		if err := e.Service.Deactivate(r.Context(), cred, e.clientIP(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (e *Exchange) move(w http.ResponseWriter, r *http.Request) {
	e.withCredential(w, r, func(fields map[string]string, cred string) error {
		a, err := e.Service.Move(r.Context(), gateway.MoveRequest{Token: cred, Domain: fields["domain"], ClientIP: e.clientIP(r)})
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, a)
		return nil
	})
}

func (e *Exchange) status(w http.ResponseWriter, r *http.Request) {
	t, _ := Bearer(r)
	v, err := e.Service.Status(r.Context(), t)
	if err != nil {
		WriteProblem(w, e.Logger, noCredential(err, t))
		return
	}
	WriteJSON(w, http.StatusOK, struct {
		License *gateway.LicenseView `json:"license"`
	}{v})
}

// operation names the endpoint a path asks for: its last segment, or
// status/refresh.
func operation(p string) string {
	op := path.Base(p)
	if op == "refresh" && path.Base(path.Dir(p)) == "status" {
		return "status/refresh"
	}
	return op
}

// refreshStatus answers POST status/refresh: the licence block after a
// recheck now, and whether the source answered ("checked").
func (e *Exchange) refreshStatus(w http.ResponseWriter, r *http.Request) {
	t, _ := Bearer(r)
	v, checked, err := e.Service.RefreshStatus(r.Context(), t)
	if err != nil {
		WriteProblem(w, e.Logger, noCredential(err, t))
		return
	}
	WriteJSON(w, http.StatusOK, struct {
		License *gateway.LicenseView `json:"license"`
		Checked bool                 `json:"checked"`
	}{v, checked})
}

func (e *Exchange) jwks(w http.ResponseWriter, r *http.Request) {
	if err := e.Service.EnsureKeys(r.Context()); err != nil {
		WriteProblem(w, e.Logger, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(e.Service.JWKS())
}

package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/licensegate/licensegate/gateway"
)

// ProblemTypeBase prefixes each problem's type URI; the README documents
// every code under this anchor.
const ProblemTypeBase = "https://github.com/licensegate/licensegate#error-"

// Problem is an RFC 9457 problem details object with licensegate's
// extension members. The token endpoint's also carry RFC 6749 section 5.2's
// error member, so standard OAuth2 clients classify them.
type Problem struct {
	Type        string              `json:"type"`
	Title       string              `json:"title"`
	Status      int                 `json:"status"`
	Code        string              `json:"code"`
	OAuthError  string              `json:"error,omitempty"`
	Detail      string              `json:"detail,omitempty"`
	Errors      map[string][]string `json:"errors,omitempty"`
	Activations []gateway.Holder    `json:"activations,omitempty"`
	PortalURL   string              `json:"portal_url,omitempty"`
}

// statusFor maps public codes to HTTP statuses (SPEC sections 4 and 6).
var statusFor = map[string]int{
	gateway.CodeMalformedRequest:      http.StatusBadRequest,
	gateway.CodeRequestTooLarge:       http.StatusRequestEntityTooLarge,
	gateway.CodeRequestTimeout:        http.StatusRequestTimeout,
	gateway.CodeValidationFailed:      http.StatusUnprocessableEntity,
	gateway.CodeInvalidKeyFormat:      http.StatusUnprocessableEntity,
	gateway.CodeIdempotencyKeyReused:  http.StatusUnprocessableEntity,
	gateway.CodeLicenseNotFound:       http.StatusNotFound,
	gateway.CodeNotFound:              http.StatusNotFound,
	gateway.CodeLicenseRevoked:        http.StatusForbidden,
	gateway.CodeLicenseSuspended:      http.StatusForbidden,
	gateway.CodeLicenseExpired:        http.StatusForbidden,
	gateway.CodeLicenseLocked:         http.StatusForbidden,
	gateway.CodeWrongProduct:          http.StatusForbidden,
	gateway.CodeDomainNotAllowed:      http.StatusForbidden,
	gateway.CodeInstallationInactive:  http.StatusForbidden,
	gateway.CodeTokenRevoked:          http.StatusForbidden,
	gateway.CodeRequirementNotMet:     http.StatusForbidden,
	gateway.CodeAddonAttached:         http.StatusConflict,
	gateway.CodeInstallationReleased:  http.StatusForbidden,
	gateway.CodeInstallationContested: http.StatusForbidden,
	gateway.CodeQuotaExceeded:         http.StatusTooManyRequests,
	gateway.CodeActivationLimit:       http.StatusConflict,
	gateway.CodeDomainInUse:           http.StatusConflict,
	gateway.CodeRateLimited:           http.StatusTooManyRequests,
	gateway.CodeMoveCooldown:          http.StatusTooManyRequests,
	gateway.CodeRefreshCooldown:       http.StatusTooManyRequests,
	gateway.CodeUpstreamUnavailable:   http.StatusServiceUnavailable,
	gateway.CodeStoreUnavailable:      http.StatusServiceUnavailable,
	gateway.CodeInvalidToken:          http.StatusUnauthorized,
	gateway.CodeRefreshTokenReused:    http.StatusUnauthorized,
	gateway.CodeWebhookRefused:        http.StatusUnauthorized,
	gateway.CodeMethodNotAllowed:      http.StatusMethodNotAllowed,
	gateway.CodeUnsupportedMedia:      http.StatusUnsupportedMediaType,
	gateway.CodeInternal:              http.StatusInternalServerError,
}

// StatusClientClosed is nginx's 499 "client closed request": the status
// the access log shows for a request whose client left before its answer
// was ready (gateway.CodeClientClosed). No client reads it. It is not in
// statusFor: it is no 4xx a client caused (nothing counts it as a failed
// attempt) and no 5xx.
const StatusClientClosed = 499

// WriteProblem answers with err as problem+json, logging its internal
// cause (never a secret: causes are built without keys or tokens). A 401
// carries a Bearer challenge, with error="invalid_token" unless err wraps
// ErrNoBearer (the request presented no credential).
//
// A request its client abandoned (gateway.CodeClientClosed) gets status
// 499 and no body, and is logged at debug level: it is no failure.
func WriteProblem(w http.ResponseWriter, logger *zap.Logger, err error) {
	WriteOAuthProblem(w, logger, err, "")
}

// OAuth2 error codes of the token endpoint (RFC 6749 section 5.2).
const (
	oauthInvalidRequest       = "invalid_request"
	oauthInvalidGrant         = "invalid_grant"
	oauthUnsupportedGrantType = "unsupported_grant_type"
)

// oauthErrorFor is the RFC 6749 error member for a refused token request:
// invalid_request for a request the endpoint could not read, invalid_grant
// for a refresh token that is unknown, spent, reused, expired or revoked
// (or whose installation or licence may no longer hold tokens: the product
// must ask for the code again). Rate limits and outages have none: RFC
// 6749 defines no code for them, and the client retries.
func oauthErrorFor(err error) string {
	switch code := gateway.AsError(err).Code; statusFor[code] {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return oauthInvalidRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return oauthInvalidGrant
	}
	return ""
}

// WriteOAuthProblem is WriteProblem with RFC 6749's error member set to
// oauthError ("": none).
func WriteOAuthProblem(w http.ResponseWriter, logger *zap.Logger, err error, oauthError string) {
	e := gateway.AsError(err)
	if e.Code == gateway.CodeClientClosed {
		WriteClientClosed(w, logger, err)
		return
	}
	status, ok := statusFor[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if e.Cause != nil {
		level := zapcore.DebugLevel
		if status >= 500 {
			level = zapcore.ErrorLevel
		}
		if c := logger.Check(level, "request refused"); c != nil {
			c.Write(zap.String("code", e.Code), zap.Error(e.Cause))
		}
	}
	h := w.Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if status == http.StatusUnauthorized && e.Code != gateway.CodeWebhookRefused {
		// RFC 6750 section 3.1: no error code when no credential came.
		challenge := `Bearer error="invalid_token"`
		if errors.Is(err, ErrNoBearer) {
			challenge = "Bearer"
		}
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type: ProblemTypeBase + e.Code, Title: http.StatusText(status), Status: status,
		Code: e.Code, OAuthError: oauthError, Detail: e.Detail, Errors: e.Fields, Activations: e.Activations, PortalURL: e.PortalURL,
	})
}

// WriteClientClosed ends a request whose client has gone: status 499 for
// the access log, no body, the cause at debug level.
func WriteClientClosed(w http.ResponseWriter, logger *zap.Logger, err error) {
	if c := logger.Check(zapcore.DebugLevel, "client closed request"); c != nil {
		c.Write(zap.Error(err))
	}
	w.WriteHeader(StatusClientClosed)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

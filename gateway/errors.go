package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// Public error codes (SPEC section 4 and 6). They never change meaning.
const (
	CodeMalformedRequest      = "malformed_request"
	CodeRequestTooLarge       = "request_too_large"
	CodeRequestTimeout        = "request_timeout"
	CodeValidationFailed      = "validation_failed"
	CodeInvalidKeyFormat      = "invalid_key_format"
	CodeLicenseNotFound       = "license_not_found"
	CodeLicenseRevoked        = policy.CodeLicenseRevoked
	CodeLicenseSuspended      = policy.CodeLicenseSuspended
	CodeLicenseExpired        = policy.CodeLicenseExpired
	CodeLicenseLocked         = policy.CodeLicenseLocked
	CodeWrongProduct          = "wrong_product"
	CodeDomainNotAllowed      = policy.CodeDomainNotAllowed
	CodeDomainInUse           = policy.CodeDomainInUse
	CodeActivationLimit       = policy.CodeActivationLimit
	CodeRateLimited           = "rate_limited"
	CodeMoveCooldown          = "move_cooldown"
	CodeRefreshCooldown       = "refresh_cooldown"
	CodeWebhookRefused        = "webhook_refused"
	CodeUpstreamUnavailable   = "upstream_unavailable"
	CodeStoreUnavailable      = "store_unavailable"
	CodeInvalidToken          = "invalid_token"
	CodeRefreshTokenReused    = "refresh_token_reused"
	CodeInstallationInactive  = "installation_deactivated"
	CodeTokenRevoked          = "token_revoked"
	CodeInstallationReleased  = "installation_released"
	CodeInstallationContested = "installation_contested"
	CodeQuotaExceeded         = "quota_exceeded"
	CodeIdempotencyKeyReused  = "idempotency_key_reused"
	CodeRequirementNotMet     = "requirement_not_met"
	CodeAddonAttached         = "addon_already_attached"
	CodeNotFound              = "not_found"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeUnsupportedMedia      = "unsupported_media_type"
	CodeInternal              = "internal_error"
)

// CodeClientClosed marks a request its caller abandoned: the request's
// context was cancelled (the client closed the connection) before the
// answer was ready. It is not a failure of the store or of anything else,
// and not a public code: nobody is left to read an answer. The HTTP layer
// logs it at debug level with status 499, nginx's "client closed request".
const CodeClientClosed = "client_closed_request"

// ClientClosed reports whether err ends a request because its caller went
// away rather than because something failed: ctx, the caller's context, is
// done (checked first, so this holds however a store wrapped the
// cancellation), or err was classified CodeClientClosed.
func ClientClosed(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx != nil && ctx.Err() != nil {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Code == CodeClientClosed
}

// Error is a refusal a client can act on. Code and Detail are public;
// Cause is logged, never shown.
type Error struct {
	Code   string
	Detail string
	// Fields maps request fields to messages, for validation_failed.
	Fields map[string][]string
	// Activations lists the installations holding the slots, for
	// activation_limit_reached (domains masked).
	Activations []Holder
	// PortalURL is the buyer portal's page of the licence, for
	// activation_limit_reached when a portal serves its product.
	PortalURL string
	// RetryAfter is set for rate limits and outages.
	RetryAfter time.Duration
	Cause      error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Cause)
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Cause }

// AsError returns err as an *Error; anything else becomes internal_error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Detail: "An internal error occurred.", Cause: err}
}

// Invalid is a validation_failed error with its messages per field.
func Invalid(fields map[string][]string) *Error {
	return &Error{Code: CodeValidationFailed, Detail: "The request has invalid fields.", Fields: fields}
}

// Validation is a validation_failed error for one field.
func Validation(field, msg string) *Error {
	return Invalid(map[string][]string{field: {msg}})
}

// What a store_unavailable refusal tells the caller, by what could not be
// done. The texts are part of the wire answers and kept as they were.
const (
	detailUnavailable     = "The licence service is temporarily unavailable. Please try again shortly."
	detailGateUnavailable = "The licence service is temporarily unavailable."
	detailCannotIssue     = "Tokens cannot be issued right now. Please try again shortly."
)

// unavailable is the one constructor of store_unavailable: the store (or
// the signing keys it holds) cannot be reached, so the caller should retry
// shortly. cause is for the log.
//
// A cancelled call is the exception, classified client_closed_request: the
// service calls the store with its caller's context (work shared between
// callers runs detached from each), so a cancellation is that caller going
// away, not an outage.
func unavailable(detail string, cause error) *Error {
	if errors.Is(cause, context.Canceled) {
		return clientClosed(cause)
	}
	return &Error{Code: CodeStoreUnavailable, Detail: detail, RetryAfter: 5 * time.Second, Cause: cause}
}

// storeUnavailable is the usual store_unavailable refusal.
func storeUnavailable(cause error) *Error { return unavailable(detailUnavailable, cause) }

func clientClosed(err error) *Error {
	return &Error{Code: CodeClientClosed, Detail: "The client closed the request.", Cause: err}
}

func invalidToken(detail string, cause error) *Error {
	return &Error{Code: CodeInvalidToken, Detail: detail, Cause: cause}
}

// Holder is an installation listed in activation_limit_reached: enough
// for the buyer to recognise their own (label, dates, a masked domain such
// as b***r.com), never a domain in the clear, which would tell whoever
// holds a leaked code which domain to claim.
type Holder struct {
	Domain     string     `json:"domain"`
	Label      string     `json:"label"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt *time.Time `json:"last_seen_at"`
}

func fromRefusal(r *policy.Refusal) *Error {
	e := &Error{Code: r.Code, Detail: r.Detail}
	for _, h := range r.Holders {
		e.Activations = append(e.Activations, Holder{
			Domain: policy.MaskDomain(h.Domain), Label: policy.MaskLabel(h.Label, h.Domain),
			CreatedAt: h.CreatedAt, LastSeenAt: timePtr(h.LastSeenAt),
		})
	}
	return e
}

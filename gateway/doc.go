// Package gateway is licensegate's service: activation, token refresh,
// deactivation, domain moves, status and the gate's authorisation, with no
// HTTP server and no Caddy in it.
//
// Activation verifies a key upstream at most once: the licence is stored
// under a keyed hash of source and code, with the code sealed for
// re-checks, and every later question is answered from the store.
//
// Access tokens are admitted on one path, Gate.Admit (gate.go): the gate
// handler uses it per request, and deactivate, move and status verify
// their access tokens through it. It reads licence states from an
// in-process cache that the store's change feed keeps fresh, so it does no
// I/O in steady state. New builds the signing key ring and issuer; the
// ring keeps a replaced key exactly as long as its tokens can live.
//
// The background recheck (recheck.go) is one of the service's workers: it
// holds a store lease with a fencing token, so one instance rechecks for
// all, claims due licences from the store's next-check index, asks each
// licence's source with its side-effect-free Recheck within the source's
// recheck budget, and applies policy.RecheckRules with a per-source
// mass-suspension guard, writing licence and audit entry in one fenced
// store update.
//
// Files by concern: one per installer operation (activate.go, refresh.go,
// installation.go, idempotency.go), the author's operations in admin*.go,
// the answers' shapes in view.go, the audit log in audit.go, the
// background work in workers.go and recheck*.go. What several operations
// share has a file named for it: the configured products (product.go),
// the licence record in policy's terms (license.go), a key's candidate
// sources (licensekey.go) and the installer's field checks (input.go).
// In events.go is the one function (Service.event) every state change
// goes through: it adds the change's audit and outbox entries to the
// UpdateLicense write that makes the change (or, for an event of no
// licence, writes them together at once).
//
// Every error a caller can cause is an *Error with a stable public code;
// its Cause is for logs only.
package gateway

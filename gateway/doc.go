// Package gateway is licensegate's service: activation, token refresh,
// deactivation, domain moves, status and the gate's authorisation, with no
// HTTP server and no Caddy in it.
//
// Activation verifies a key upstream at most once: the licence is stored
// under a keyed hash of source and code, with the code sealed for
// re-checks, and every later question is answered from the store. The gate
// path (Authorize) reads licence states from an in-process cache that the
// store's change feed keeps fresh, so it does no I/O in steady state.
//
// Every error a caller can cause is an *Error with a stable public code;
// its Cause is for logs only.
package gateway

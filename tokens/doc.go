// Package tokens issues and verifies what an installation holds instead of
// its purchase code: short-lived Ed25519-signed JWT access tokens (claims as
// SPEC section 5) and opaque, rotating refresh tokens stored only as keyed
// hashes. The signing keys live in the store, sealed with the master secret,
// so every gateway instance shares one key ring.
package tokens

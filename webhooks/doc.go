// Package webhooks delivers licensegate's events to the author's endpoints
// by the Standard Webhooks 1.0 convention: a JSON body
// {"type","timestamp","data"}, and the headers webhook-id,
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of
// id.timestamp.body>", one per secret during a rotation), so a receiver can
// verify with any Standard Webhooks library.
//
// Delivery is at least once: each event waits in the store's outbox,
// written in the same store update as the change it announces, until its
// endpoint answers 2xx. A failed attempt is retried with exponential
// backoff and jitter for over 24 hours (honouring Retry-After on 429 and
// 503), always with the same webhook-id so receivers can drop duplicates;
// after that the delivery is marked failed and kept for the admin API.
//
// Worker (worker.go) drains the outbox: it claims due entries for a lease
// (so workers on every instance share the work and a dead one's entries go
// to another after the lease), sends each to every Endpoint that wants it,
// and settles it. The store hands out only the oldest pending entry of each
// licence, so a licence's events arrive in order.
//
// This package knows the outbox, not the gateway: it signs, sends and
// schedules; what an event means is package gateway's.
package webhooks

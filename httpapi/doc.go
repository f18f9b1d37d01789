// Package httpapi holds the net/http pieces every licensegate surface
// shares, with no Caddy in them: reading a request body into fields
// (JSON, form or multipart, bounded), problem+json answers and the map
// from gateway codes to HTTP statuses, the Bearer credential, the
// per-client rate limiter, and the two JSON APIs built from them: the
// installer API (Exchange) and the author's admin API (Admin).
//
// Package caddymodule mounts these in Caddy; the web pages to come (the
// buyer portal, the author console) are to use the same pieces, so a
// refusal reads the same wherever it comes from.
package httpapi

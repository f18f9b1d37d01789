// Package caddymodule is licensegate's Caddy glue, and only that: the
// licensegate app (config, provisioning, lifecycle), its storage and
// source guest modules, the license_exchange and license_gate HTTP
// handlers, the admin API's routes, and their Caddyfile syntax.
//
// No business rule lives here, and no HTTP helper a web surface needs:
// the handlers are thin modules over package httpapi (request decoding,
// problem answers, limiters, the installer and admin APIs), the rules are
// package gateway's, the metrics package telemetry's and the caddy
// subcommands package cli's. Each source module reads its own Caddyfile
// block beside its definition (source_*.go).
package caddymodule

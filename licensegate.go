// Package licensegate is the module's root: importing it plugs the
// licensegate modules into Caddy. It is what xcaddy imports for
//
//	xcaddy build v2.11.9 --with github.com/licensegate/licensegate
//
// and what cmd/licensegate's main imports, as xcaddy's generated main
// does. It holds no code of its own: the app, the storage and source guest
// modules, the license_exchange and license_gate handlers, their Caddyfile
// syntax and the admin API's routes are in package caddymodule; the caddy
// subcommands (license, installation, keys, audit, webhooks) in package
// cli; the service behind them is package gateway.
package licensegate

import (
	// plug in licensegate's Caddy modules and subcommands
	_ "github.com/licensegate/licensegate/caddymodule"
	_ "github.com/licensegate/licensegate/cli"
)

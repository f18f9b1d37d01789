// Package cli holds licensegate's caddy subcommands: license, installation,
// keys, audit and webhooks. Each is a thin client of the admin API
// (/licensegate/... on Caddy's admin listener, found from --address or
// the config's admin block), so a command does exactly what the API does
// and leaves the same audit entry. A licence key given on the command
// line is resolved to its id by POST /licensegate/licenses/lookup and is
// never printed.
//
// Importing the package registers the commands with Caddy's command line,
// as importing caddymodule registers the modules.
package cli

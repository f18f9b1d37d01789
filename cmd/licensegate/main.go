// Command licensegate is Caddy with the standard modules and licensegate's:
// the main that `xcaddy build --with github.com/licensegate/licensegate`
// generates, importing the module's root package as xcaddy does.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/licensegate/licensegate"
)

func main() {
	caddycmd.Main()
}

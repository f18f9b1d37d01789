// Command licensegate is Caddy with the licensegate modules: what
// `xcaddy build --with github.com/licensegate/licensegate` produces.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/licensegate/licensegate/caddymodule"
)

func main() {
	caddycmd.Main()
}

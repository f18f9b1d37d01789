package caddymodule

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/web/console"
)

func init() {
	caddy.RegisterModule(Console{})
	httpcaddyfile.RegisterHandlerDirective("license_console", parseConsole)
	httpcaddyfile.RegisterDirectiveOrder("license_console", httpcaddyfile.Before, "respond")
}

// Console is the author console (SPEC section 13; web/console). It
// authenticates no one: put basic_auth (or any handler that sets
// {http.auth.user.id}) before it; without an authenticated user it
// answers 403.
type Console struct {
	// BasePath is where the console lives. Default /console.
	BasePath string `json:"base_path,omitempty"`
	// ReadOnlyUsers see everything and change nothing.
	ReadOnlyUsers []string `json:"read_only_users,omitempty"`
	handler       http.Handler
}

// CaddyModule returns the Caddy module information.
func (Console) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.license_console", New: func() caddy.Module { return new(Console) }}
}

// Provision builds the console over the app's service.
func (c *Console) Provision(ctx caddy.Context) error {
	app, err := licensegateApp(ctx, "license_console")
	if err != nil {
		return err
	}
	h, err := console.New(console.Config{BasePath: c.BasePath, Service: app.Service(), Master: app.master,
		ReadOnly: c.ReadOnlyUsers, Logger: ctx.Logger(), User: authenticatedUser})
	if err != nil {
		return fmt.Errorf("license_console: %w", err)
	}
	c.handler = h
	return nil
}

// authenticatedUser is the user id Caddy's authentication handler proved
// for r: nothing else (no header, no cookie) names a console user.
func authenticatedUser(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	id, _ := repl.GetString("http.auth.user.id")
	return id
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	c.handler.ServeHTTP(w, r)
	return nil
}

// parseConsole parses:
//
//	license_console {
//		base_path <path>
//		read_only_users <user...>
//	}
func parseConsole(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	c := new(Console)
	for h.NextBlock(0) {
		switch opt := h.Val(); opt {
		case "base_path":
			if err := singleArg(h.Dispenser, &c.BasePath); err != nil {
				return nil, err
			}
		case "read_only_users":
			if c.ReadOnlyUsers = h.RemainingArgs(); len(c.ReadOnlyUsers) == 0 {
				return nil, h.ArgErr()
			}
		default:
			return nil, h.Errf("license_console: unrecognized option %q", opt)
		}
	}
	return c, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Console)(nil)
	_ caddyhttp.MiddlewareHandler = (*Console)(nil)
)

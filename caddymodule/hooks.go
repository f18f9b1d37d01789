package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/httpapi"
)

func init() {
	caddy.RegisterModule(Hooks{})
	httpcaddyfile.RegisterHandlerDirective("license_hooks", parseHooks)
	httpcaddyfile.RegisterDirectiveOrder("license_hooks", httpcaddyfile.Before, "respond")
}

// Hooks receives store webhooks (SPEC section 7): mounted where the
// author points the stores' webhooks, it answers on the path's end,
// .../lemonsqueezy, .../gumroad/<webhook_path_token>, .../keygen or
// .../digitaldownloads, for each source with its webhook secret set. A
// verified hook queues a recheck of the licence it names; it changes
// nothing by itself. It answers every request and never calls the next
// handler.
type Hooks struct {
	api httpapi.Hooks
}

// CaddyModule returns the Caddy module information.
func (Hooks) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.license_hooks", New: func() caddy.Module { return new(Hooks) }}
}

// Provision gets the licensegate app's service.
func (h *Hooks) Provision(ctx caddy.Context) error {
	app, err := licensegateApp(ctx, "license_hooks")
	if err != nil {
		return err
	}
	h.api = httpapi.Hooks{Service: app.Service(), Logger: ctx.Logger(), Target: originalTarget}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if h.api.HasPathToken(r.URL.Path) {
		// The URL's last segment is a secret (Gumroad signs nothing):
		// keep the request out of the access log.
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	}
	h.api.ServeHTTP(w, r)
	return nil
}

// originalTarget is the request-target as the client sent it: Caddy's
// rewrites (handle_path too) change r.RequestURI, and Keygen signs the
// one it sent.
func originalTarget(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		return orig.RequestURI
	}
	return r.RequestURI
}

// parseHooks parses "license_hooks" (no options: each source's block holds
// its webhook secret).
func parseHooks(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	if h.Next(); h.NextArg() || h.NextBlock(0) { // past the directive's name: nothing
		return nil, h.Err("license_hooks takes no arguments or options: set each source's webhook secret in its source block")
	}
	return new(Hooks), nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Hooks)(nil)
	_ caddyhttp.MiddlewareHandler = (*Hooks)(nil)
)

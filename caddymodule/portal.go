package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/web/portal"
)

func init() {
	caddy.RegisterModule(Portal{})
	httpcaddyfile.RegisterHandlerDirective("license_portal", parsePortal)
	httpcaddyfile.RegisterDirectiveOrder("license_portal", httpcaddyfile.Before, "respond")
}

// Portal is the buyer portal (SPEC section 12; web/portal): "Sign in with
// Envato", the buyer's licences and installations, deactivate, "I renewed
// my support", download my data. It answers every request under its base
// path.
type Portal struct {
	portal.Options
	handler http.Handler
}

// CaddyModule returns the Caddy module information.
func (Portal) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.license_portal", New: func() caddy.Module { return new(Portal) }}
}

// Provision builds the portal over the app's service and sources.
func (p *Portal) Provision(ctx caddy.Context) error {
	app, err := licensegateApp(ctx, "license_portal")
	if err != nil {
		return err
	}
	h, err := portal.Build(p.Options, portal.Env{Service: app.Service(), Master: app.master, Logger: ctx.Logger(),
		Source: app.resilientSource, Secret: resolveSecret, ClientIP: clientIP})
	if err != nil {
		return fmt.Errorf("license_portal: %w", err)
	}
	p.handler = h
	return nil
}

// resilientSource is a configured source's wrapper, mappings and base URL.
func (a *App) resilientSource(name string) (*upstreams.Resilient, upstreams.ProductMap, string, bool) {
	res, ok := a.sources[name].(*upstreams.Resilient)
	maps, err := a.productMaps()
	return res, maps[name], a.sourceBases[name], ok && err == nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if strings.Contains(r.URL.Path, "/auth/") {
		// An OAuth code or a mailed link's token rides in the URL: keep
		// sign-in requests out of the access log.
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	}
	p.handler.ServeHTTP(w, r)
	return nil
}

// parsePortal parses:
//
//	license_portal {
//		products <slug...>
//		base_path <path>
//		public_url <url>
//		session_ttl <duration>
//		sign_in_limit <n>/<period>
//		envato_oauth { client_id <id>; client_secret <secret>; redirect_uri <url>; base_url <url>; source <name> }
//		email_link { smtp <url>; from <address>; link_ttl <duration> }
//	}
func parsePortal(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	p := new(Portal)
	for h.NextBlock(0) {
		var err error
		switch opt := h.Val(); opt {
		case "products":
			p.Products = h.RemainingArgs()
		case "session_ttl":
			var d caddy.Duration
			err = durationArg(h.Dispenser, &d)
			p.SessionTTL = time.Duration(d)
		case "envato_oauth":
			o := new(portal.EnvatoOAuth)
			p.EnvatoOAuth = o
			err = optionBlock(h.Dispenser, map[string]*string{"client_id": &o.ClientID, "client_secret": &o.ClientSecret,
				"redirect_uri": &o.RedirectURI, "base_url": &o.BaseURL, "source": &o.Source})
		case "email_link":
			e := new(portal.EmailLink)
			p.EmailLink = e
			err = optionBlock(h.Dispenser, map[string]*string{"smtp": &e.SMTP, "from": &e.From, "link_ttl": &e.LinkTTL})
		default:
			dst, ok := map[string]*string{"base_path": &p.BasePath, "public_url": &p.PublicURL, "sign_in_limit": &p.SignInLimit}[opt]
			if !ok {
				return nil, h.Errf("license_portal: unrecognized option %q", opt)
			}
			err = singleArg(h.Dispenser, dst)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// optionBlock reads a nested block of single-value options into dst.
func optionBlock(d *caddyfile.Dispenser, dst map[string]*string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		v, ok := dst[d.Val()]
		if !ok {
			return d.Errf("unrecognized option %q", d.Val())
		}
		if err := singleArg(d, v); err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Portal)(nil)
	_ caddyhttp.MiddlewareHandler = (*Portal)(nil)
)

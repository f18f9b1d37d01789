package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// Gate admits requests that carry a valid access token of an installation
// in good standing, without any marketplace call (SPEC section 6).
//
// On admission it removes the Authorization header, any client-sent
// X-License-* (or X-License_*) header and any Connection token naming one
// (reverse_proxy would drop the gate's own header of that name), then sets:
//
//	X-License-Installation   installation id
//	X-License-Product        product slug
//	X-License-Domain         the installation's domain
//	X-License-Type           licence type (regular, extended, ...)
//	X-License-Support-Active true or false
//
// and the placeholders {license.installation}, {license.id},
// {license.product}, {license.domain}, {license.class}, {license.type} and
// {license.support_active}.
type Gate struct {
	// Products lists the product slugs whose tokens are admitted (the
	// tokens' aud). Default: every configured product.
	Products []string `json:"products,omitempty"`

	// OnStoreError decides what happens when the store cannot be reached
	// and the cached status is older than the cache's TTL. Default:
	// allow_stale for 10m (serve the last-known status), then 503.
	OnStoreError *StoreErrorPolicy `json:"on_store_error,omitempty"`

	staleFor time.Duration
	gate     *gateway.Gate
	logger   *zap.Logger
}

// StoreErrorPolicy is the gate's behaviour while the store is down.
type StoreErrorPolicy struct {
	// Mode is allow_stale or deny.
	Mode string `json:"mode,omitempty"`
	// Stale is how long past its freshness a last-known status is served
	// with allow_stale. Default: 10m.
	Stale caddy.Duration `json:"stale,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision builds the gate's admission path for its products.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	app, err := licensegateApp(ctx, "license_gate")
	if err != nil {
		return err
	}
	known := app.productNames()
	for _, p := range g.Products {
		if !slices.Contains(known, p) {
			return fmt.Errorf("license_gate: products: %q is not a configured product (have: %s)", p, strings.Join(known, ", "))
		}
	}
	g.gate = app.Service().Gate(g.Products)
	g.staleFor = defaultStale
	if p := g.OnStoreError; p != nil {
		switch p.Mode {
		case "deny":
			g.staleFor = 0
		case "allow_stale", "":
			if p.Stale < 0 {
				return errors.New("license_gate: on_store_error: stale must not be negative")
			}
			g.staleFor = durationOr(p.Stale, defaultStale)
		default:
			return fmt.Errorf("license_gate: on_store_error: mode %q is not allow_stale or deny", p.Mode)
		}
	}
	return nil
}

// ServeHTTP admits or refuses the request.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	raw, ok := bearer(r)
	if !ok {
		writeProblem(w, g.logger, &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "A Bearer access token is required.", Cause: errNoBearer})
		return nil
	}
	grant, err := g.gate.Admit(r.Context(), raw, g.staleFor)
	if err != nil {
		writeProblem(w, g.logger, err)
		return nil
	}
	forward(r, &grant)
	return next.ServeHTTP(w, r)
}

// forward replaces the credentials with the licence facts, as headers and
// placeholders.
func forward(r *http.Request, grant *gateway.Grant) {
	h := r.Header
	h.Del("Authorization")
	stripLicenseHeaders(h)
	support := strconv.FormatBool(grant.SupportActive)
	h.Set("X-License-Installation", grant.InstallationID)
	h.Set("X-License-Product", grant.Product)
	h.Set("X-License-Domain", grant.Domain)
	h.Set("X-License-Type", grant.Type)
	h.Set("X-License-Support-Active", support)

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("license.installation", grant.InstallationID)
	repl.Set("license.id", grant.LicenseID)
	repl.Set("license.product", grant.Product)
	repl.Set("license.domain", grant.Domain)
	repl.Set("license.class", grant.Class)
	repl.Set("license.type", grant.Type)
	repl.Set("license.support_active", support)
	repl.Set("license.stale", strconv.FormatBool(grant.Stale)) // served while the store was unreachable
}

// stripLicenseHeaders removes every header the client sent that could
// pass for one the gate sets, and every Connection token naming one:
// reverse_proxy deletes the headers a client's Connection header names
// (RFC 9110 section 7.6.1) after the gate has set its own, so
// "Connection: X-License-Support-Active" would hide the gate's answer
// from the backend.
func stripLicenseHeaders(h http.Header) {
	for name := range h {
		if isLicenseHeader(name) {
			delete(h, name) // name is the map's own key: no canonicalising
		}
	}
	if conn, ok := h["Connection"]; ok && namesLicenseHeader(conn) {
		if kept := connectionTokensWithout(conn); kept != "" {
			h["Connection"] = []string{kept}
		} else {
			delete(h, "Connection")
		}
	}
}

// namesLicenseHeader reports whether a Connection header's values name a
// licence header. It allocates nothing: most requests carry no Connection
// header or just "keep-alive".
func namesLicenseHeader(values []string) bool {
	for _, v := range values {
		for v != "" {
			var token string
			token, v, _ = strings.Cut(v, ",")
			if isLicenseHeader(textproto.TrimString(token)) {
				return true
			}
		}
	}
	return false
}

// connectionTokensWithout joins a Connection header's tokens except those
// naming a licence header.
func connectionTokensWithout(values []string) string {
	var kept []string
	for _, v := range values {
		for token := range strings.SplitSeq(v, ",") {
			if token = textproto.TrimString(token); token != "" && !isLicenseHeader(token) {
				kept = append(kept, token)
			}
		}
	}
	return strings.Join(kept, ", ")
}

// isLicenseHeader reports whether a client-sent header could pass for one
// the gate forwards. CGI-style backends (php_fastcgi) turn both "-" and "_"
// into "_", so X-License_Type would reach PHP as HTTP_X_LICENSE_TYPE beside
// the gate's own value. Caddy drops underscore headers by default, but an
// author may allow some (expected_underscore_headers); both spellings are
// stripped here regardless.
func isLicenseHeader(name string) bool {
	const prefix = "x-license-"
	if len(name) < len(prefix) {
		return false
	}
	return strings.EqualFold(strings.ReplaceAll(name[:len(prefix)], "_", "-"), prefix)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)

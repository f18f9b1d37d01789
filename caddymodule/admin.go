package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/httpapi"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI mounts httpapi.Admin, the author's levers (SPEC section 8), on
// Caddy's admin endpoint under /licensegate/, where it inherits the admin
// listener's protections (localhost by default, origin checks, remote
// admin with mTLS).
type adminAPI struct {
	api httpapi.Admin
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.licensegate",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision finds the licensegate app, when one is configured.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.api.Logger = ctx.Logger(a)
	if app, err := ctx.AppIfConfigured("licensegate"); err == nil {
		a.api.Service = app.(*App).Service()
	}
	return nil
}

// Routes implements caddy.AdminRouter.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: httpapi.AdminBase, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// serve answers through httpapi.Admin, handing its refusals to Caddy's
// admin server, which writes them as {"error": ...} and logs them.
func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	err := a.api.Serve(w, r)
	var se *httpapi.StatusError
	if errors.As(err, &se) {
		return caddy.APIError{HTTPStatus: se.Status, Err: se.Err}
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)

package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/web"
)

// The console's levers on a licence (the path's last segment). Each is a
// gateway operation the admin API also uses, so there is one path and one
// audit: suspend, reinstate (or dismiss a flag: the same operation, which
// also forgets the answers that flagged it), unlock, lock, recheck now.
const (
	actSuspend   = "suspend"
	actReinstate = "reinstate"
	actDismiss   = "dismiss"
	actUnlock    = "unlock"
	actLock      = "lock"
	actRecheck   = "recheck"
)

// licenseActions are the levers a licence's state offers, in the order
// the page shows them.
func licenseActions(lic gateway.AdminLicense) []string {
	var out []string
	switch lic.Status {
	case "flagged":
		out = append(out, actDismiss, actSuspend)
	case "suspended":
		out = append(out, actReinstate)
	case "active":
		out = append(out, actSuspend)
	}
	if lic.Locked {
		out = append(out, actUnlock)
	} else {
		out = append(out, actLock)
	}
	return append(out, actRecheck)
}

// lever is one action's form as the "lever" template draws it.
type lever struct {
	Path, Label string
	// ID names the reason field, unique on its page.
	ID                   string
	Reason               bool
	Danger               bool
	CSRFField, CSRFToken string
}

// lever builds the form of action (its label is "action.<action>") at
// path for req's user.
func (c *Console) lever(req request, action, id string, reason bool, path string) lever {
	return lever{Path: path, Label: c.rd.T("action." + action), ID: "reason-" + id + "-" + action, Reason: reason,
		Danger:    action == actSuspend || action == actLock || action == "deactivate",
		CSRFField: web.CSRFField, CSRFToken: c.sessions.CSRFToken(req.sess)}
}

// queueLever filters the levers the review queue offers in its rows:
// all but lock, which answers no question the queue asks (the licence
// page has it).
func queueLever(action string) bool { return action != actLock }

// licenseLevers are the forms of the levers lic's state offers (none for
// a read-only user), those keep allows when it is set.
func (c *Console) licenseLevers(req request, lic gateway.AdminLicense, keep func(string) bool) []lever {
	if req.readOnly {
		return nil
	}
	var out []lever
	for _, a := range licenseActions(lic) {
		if keep == nil || keep(a) {
			out = append(out, c.lever(req, a, lic.ID, a != actRecheck, c.rd.Path("licenses", lic.ID, a)))
		}
	}
	return out
}

// gatewayAction maps a lever to ChangeLicense's action ("" for recheck).
var gatewayAction = map[string]string{
	actSuspend: gateway.ActionSuspend, actReinstate: gateway.ActionReinstate, actDismiss: gateway.ActionReinstate,
	actUnlock: gateway.ActionUnlock, actLock: gateway.ActionLock, actRecheck: "",
}

// licenseAction takes a lever on a licence (POST, with a reason), then
// goes back to the licence's page with what happened.
func (c *Console) licenseAction(w http.ResponseWriter, r *http.Request, req request, id, action string) {
	op, ok := gatewayAction[action]
	if !ok {
		c.notFound(w)
		return
	}
	if !methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
		return
	}
	ctx := r.Context()
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	back := c.rd.Path("licenses", id)
	if op != "" && reason == "" {
		c.refuse(w, r, back, c.rd.T("reason.required"))
		return
	}
	var (
		flash string
		err   error
	)
	if op == "" {
		var out *gateway.RecheckOutcome
		if out, err = c.cfg.Service.RecheckLicense(ctx, id); err == nil {
			flash = fmt.Sprintf(c.rd.T("action.rechecked"), out.Outcome)
			if out.Reason != "" {
				flash += " (" + out.Reason + ")"
			}
		}
	} else {
		_, err = c.cfg.Service.ChangeLicenseBy(ctx, gateway.ConsoleActor(req.user), id, op, reason)
		flash = c.rd.T("action." + action + ".done")
	}
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		c.notFound(w)
		return
	case err != nil:
		c.unavailable(w, back, err)
		return
	}
	c.logAction(req, action, id)
	c.done(w, r, back, flash)
}

// deactivate frees an installation's slot (POST, with a reason).
func (c *Console) deactivate(w http.ResponseWriter, r *http.Request, req request, id string) {
	if !methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		c.refuse(w, r, c.rd.Path("search"), c.rd.T("reason.required"))
		return
	}
	_, d, err := c.cfg.Service.DeactivateInstallationBy(r.Context(), gateway.ConsoleActor(req.user), id, reason)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		c.notFound(w)
		return
	case err != nil:
		c.unavailable(w, c.base+"/", err)
		return
	}
	c.logAction(req, "deactivate", id)
	c.done(w, r, c.rd.Path("licenses", d.License.ID), c.rd.T("action.deactivate.done"))
}

// retry makes a failed delivery pending again (POST).
func (c *Console) retry(w http.ResponseWriter, r *http.Request, req request, id string) {
	if !methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
		return
	}
	err := c.cfg.Service.RetryDelivery(r.Context(), id)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		c.notFound(w)
		return
	case err != nil:
		c.unavailable(w, c.rd.Path("deliveries"), err)
		return
	}
	c.logAction(req, "retry", id)
	c.done(w, r, c.rd.Path("deliveries"), c.rd.T("action.retry.done"))
}

// refuse goes back to a page with why a form changed nothing.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, back, why string) {
	if err := c.sessions.SetFlash(w, r, web.Flash{Kind: web.FlashError, Text: why}); err != nil {
		c.log.Warn("setting a flash message", zap.Error(err))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// done goes back to a page after an action (post, redirect, get), with
// what happened as its flash.
func (c *Console) done(w http.ResponseWriter, r *http.Request, back, flash string) {
	if err := c.sessions.SetFlash(w, r, web.Flash{Text: flash}); err != nil {
		c.log.Warn("setting a flash message", zap.Error(err))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

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
	// On an installation, and a webhook delivery.
	actDeactivate = "deactivate"
	actRetry      = "retry"
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

// expectedStatus is the status a licence lever applies to: the one the
// page showed (its form's "status" field), and for dismiss always
// flagged (a flag that is gone has nothing to dismiss).
func expectedStatus(action string, r *http.Request) string {
	if action == actDismiss {
		return "flagged"
	}
	return r.PostFormValue("status")
}

// levers is one form of actions on one thing: its CSRF token, a reason
// field when an action takes one, and a button per action, each posting
// to its own path (formaction), so a licence's levers share one reason.
type levers struct {
	// ID names the reason field, unique on its page.
	ID     string
	Reason bool
	// License is the licence page a lever on one of its installations
	// goes back to when it is refused (posted as "license").
	License string
	// Status is the licence's status as the page shows it, posted with
	// the form (expectedStatus); empty for a lever on anything else.
	Status               string
	CSRFField, CSRFToken string
	Buttons              []leverButton
}

// leverButton is one action of a levers form. An action without a
// reason (recheck, retry) skips the form's validation.
type leverButton struct {
	Path, Label      string
	Danger, NoReason bool
}

// levers builds the form of actions on the thing named id, for req's
// user: each action's label is "action.<action>", its path path(action).
func (c *Console) levers(req request, id string, actions []string, path func(string) string) *levers {
	if req.readOnly || len(actions) == 0 {
		return nil
	}
	lv := &levers{ID: "reason-" + id, CSRFField: web.CSRFField, CSRFToken: c.sessions.CSRFToken(req.sess)}
	for _, a := range actions {
		noReason := a == actRecheck || a == actRetry
		lv.Reason = lv.Reason || !noReason
		lv.Buttons = append(lv.Buttons, leverButton{Path: path(a), Label: c.rd.T("action." + a), NoReason: noReason,
			Danger: a == actSuspend || a == actLock || a == actDeactivate})
	}
	return lv
}

// queueLever filters the levers the review queue offers in its rows:
// all but lock, which answers no question the queue asks (the licence
// page has it).
func queueLever(action string) bool { return action != actLock }

// licenseLevers is the form of the levers lic's state offers (nil for a
// read-only user), those keep allows when it is set.
func (c *Console) licenseLevers(req request, lic gateway.AdminLicense, keep func(string) bool) *levers {
	var actions []string
	for _, a := range licenseActions(lic) {
		if keep == nil || keep(a) {
			actions = append(actions, a)
		}
	}
	lv := c.levers(req, lic.ID, actions, func(a string) string { return c.rd.Path("licenses", lic.ID, a) })
	if lv != nil {
		lv.Status = lic.Status
	}
	return lv
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
	if !web.Methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
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
		if out, err = c.cfg.Service.RecheckLicenseBy(ctx, gateway.ConsoleActor(req.user), id, reason); err == nil {
			flash = fmt.Sprintf(c.rd.T("action.rechecked"), out.Outcome)
			if out.Reason != "" {
				flash += " (" + out.Reason + ")"
			}
		}
	} else {
		var d *gateway.LicenseDetail
		d, err = c.cfg.Service.ChangeLicenseBy(ctx, gateway.ConsoleActor(req.user), id, op, reason, expectedStatus(action, r))
		flash = c.rd.T("action." + action + ".done")
		if errors.Is(err, gateway.ErrLicenseChanged) {
			c.refuse(w, r, back, fmt.Sprintf(c.rd.T("action.changed"), d.License.Status))
			return
		}
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
	if !web.Methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		back := c.rd.Path("search")
		if lic := r.PostFormValue("license"); lic != "" {
			back = c.rd.Path("licenses", lic) // one escaped segment of the console: no open redirect
		}
		c.refuse(w, r, back, c.rd.T("reason.required"))
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
	if !web.Methods(w, r, http.MethodPost) || !c.verify(w, r, req, true) {
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
	if err := c.sessions.SetFlash(w, r, web.Flash{Kind: web.FlashError, Text: why, Owner: c.sessionOf(r)}); err != nil {
		c.log.Warn("setting a flash message", zap.Error(err))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// sessionOf is the id of r's console session (the one verify checked).
func (c *Console) sessionOf(r *http.Request) string {
	sess, _ := c.sessions.Read(r)
	return sess.ID
}

// done goes back to a page after an action (post, redirect, get), with
// what happened as its flash.
func (c *Console) done(w http.ResponseWriter, r *http.Request, back, flash string) {
	if err := c.sessions.SetFlash(w, r, web.Flash{Text: flash, Owner: c.sessionOf(r)}); err != nil {
		c.log.Warn("setting a flash message", zap.Error(err))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

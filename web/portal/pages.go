package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/web"
)

// licencesData is the home page's: the buyer's licences.
type licencesData struct {
	Licenses []*gateway.LicenseDetail
}

// licenceData is a licence's page.
type licenceData struct {
	*gateway.LicenseDetail
	// RenewURL is where the buyer renews support at the marketplace.
	RenewURL string
}

// confirmData is the confirm page of an action on an installation:
// deactivate, or staging (mark it a staging copy).
type confirmData struct {
	Action       string
	License      gateway.AdminLicense
	Installation gateway.AdminInstallation
}

// installationAction is a change a buyer makes to one of their
// installations, after a confirm page.
type installationAction struct {
	name string // the path's last segment
	do   func(ctx context.Context, svc *gateway.Service, actor string, owned []string, licID, insID string) (*gateway.LicenseDetail, error)
	// offered says whether the action is offered for an installation.
	offered func(gateway.AdminInstallation) bool
	done    string // the flash message's key, followed by the domain
}

var (
	deactivateAction = installationAction{name: "deactivate", done: "deactivate.done",
		do: func(ctx context.Context, svc *gateway.Service, actor string, owned []string, licID, insID string) (*gateway.LicenseDetail, error) {
			return svc.DeactivateOwned(ctx, actor, owned, licID, insID)
		},
		offered: func(in gateway.AdminInstallation) bool { return in.Status == "active" }}
	stagingAction = installationAction{name: "staging", done: "staging.done",
		do: func(ctx context.Context, svc *gateway.Service, actor string, owned []string, licID, insID string) (*gateway.LicenseDetail, error) {
			return svc.MarkStagingOwned(ctx, actor, owned, licID, insID)
		},
		offered: stagingOffered}
)

// stagingOffered: an active production installation that is not an
// add-on's (an add-on follows its base) may be marked staging.
func stagingOffered(in gateway.AdminInstallation) bool {
	return in.Status == "active" && in.InstallClass == "production" && in.BaseInstallation == ""
}

// renewURLs are the marketplaces' pages where a buyer renews support.
var renewURLs = map[string]string{
	"envato": "https://codecanyon.net/downloads",
}

// page is a signed-in page's frame: who, the CSRF token, the flash.
func (p *Portal) page(w http.ResponseWriter, r *http.Request, sess web.Session, data any) web.Page {
	pg := web.Page{SignedInAs: displayName(sess.Identity), CSRFToken: p.cfg.Sessions.CSRFToken(sess), Data: data}
	if f, ok := p.cfg.Sessions.PopFlash(w, r); ok {
		pg.Flash = &f
	}
	return pg
}

// displayName is an identity as the header shows it: the account name.
func displayName(identity string) string {
	method, name, ok := strings.Cut(identity, ":")
	switch {
	case !ok:
		return identity
	case method == "email":
		return English["email.signed_in"] // the hash prefix is no name
	}
	return name
}

// actor is a session's buyer as the audit log names them.
func actor(sess web.Session) string {
	method, who, _ := strings.Cut(sess.Identity, ":")
	return gateway.BuyerActor(method, who)
}

// home is the buyer's licences, or the sign-in page.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	sess, lics, ok := p.signedInLicences(w, r)
	if !ok {
		return
	}
	p.render(w, http.StatusOK, "licenses", p.page(w, r, sess, licencesData{Licenses: lics}))
}

// license is one licence's page: its facts and installations. Signed
// out, it is the sign-in page, returning here (the 409's portal_url).
func (p *Portal) license(w http.ResponseWriter, r *http.Request, id string) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	sess, ok := p.cfg.Sessions.Read(r)
	if !ok {
		p.signInPage(w, r, http.StatusOK, p.rd.Path("licenses", id))
		return
	}
	owned, ok := p.owned(w, r, sess)
	if !ok {
		return
	}
	lic, err := p.cfg.Service.OwnedLicence(r.Context(), owned, id)
	switch {
	case errors.Is(err, gateway.ErrNotOwned):
		p.notYours(w)
		return
	case errors.Is(err, gateway.ErrNotFound):
		p.notFound(w)
		return
	case err != nil:
		p.unavailable(w, p.rd.Path("licenses", id), err)
		return
	}
	p.render(w, http.StatusOK, "license", p.page(w, r, sess, licenceData{LicenseDetail: lic, RenewURL: renewURLs[lic.License.Source]}))
}

// onInstallation confirms (GET) and makes (POST) a change to an
// installation: deactivate (frees its slot) or staging.
func (p *Portal) onInstallation(w http.ResponseWriter, r *http.Request, licID, insID string, act installationAction) {
	if !web.Methods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	back := p.rd.Path("licenses", licID)
	if r.Method == http.MethodPost {
		sess, err := p.cfg.Sessions.Verify(r)
		if err != nil {
			p.forbidden(w)
			return
		}
		owned, ok := p.owned(w, r, sess)
		if !ok {
			return
		}
		lic, err := act.do(r.Context(), p.cfg.Service, actor(sess), owned, licID, insID)
		if ge, ok := refusal(err); ok {
			p.flash(w, r, web.FlashError, ge.Detail) // a refusal the buyer can read, nothing changed
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		if p.failed(w, err, back) {
			return
		}
		p.flash(w, r, web.FlashInfo, p.rd.T(act.done)+" "+domainOf(lic, insID))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	sess, ok := p.cfg.Sessions.Read(r)
	if !ok {
		p.signInPage(w, r, http.StatusOK, back)
		return
	}
	owned, ok := p.owned(w, r, sess)
	if !ok {
		return
	}
	lic, err := p.cfg.Service.OwnedLicence(r.Context(), owned, licID)
	if p.failed(w, err, back) {
		return
	}
	for _, in := range lic.Installations {
		if in.ID == insID && act.offered(in) {
			p.render(w, http.StatusOK, "confirm", p.page(w, r, sess, confirmData{Action: act.name, License: lic.License, Installation: in}))
			return
		}
	}
	p.notFound(w)
}

// domainOf is the domain of one of a licence's installations.
func domainOf(lic *gateway.LicenseDetail, insID string) string {
	for _, in := range lic.Installations {
		if in.ID == insID {
			return in.Domain
		}
	}
	return ""
}

// refresh is "I renewed my support": a recheck of the licence now.
func (p *Portal) refresh(w http.ResponseWriter, r *http.Request, licID string) {
	if !web.Methods(w, r, http.MethodPost) {
		return
	}
	sess, err := p.cfg.Sessions.Verify(r)
	if err != nil {
		p.forbidden(w)
		return
	}
	back := p.rd.Path("licenses", licID)
	owned, ok := p.owned(w, r, sess)
	if !ok {
		return
	}
	checked, err := p.cfg.Service.RefreshOwned(r.Context(), owned, licID)
	var ge *gateway.Error
	switch {
	case errors.As(err, &ge) && ge.Code == gateway.CodeRefreshCooldown:
		p.flash(w, r, web.FlashError, p.rd.T("refresh.cooldown"))
	case p.failed(w, err, back):
		return
	case checked:
		p.flash(w, r, web.FlashInfo, p.rd.T("refresh.checked"))
	default:
		p.flash(w, r, web.FlashError, p.rd.T("refresh.unknown"))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// download is "download my data": the buyer's licences and installations
// as JSON (never a code or a token: the store keeps neither in the clear).
func (p *Portal) download(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	sess, lics, ok := p.signedInLicences(w, r)
	if !ok {
		return
	}
	out := struct {
		Buyer    string         `json:"buyer"`
		Exported time.Time      `json:"exported_at"`
		Licenses []buyerLicence `json:"licenses"`
	}{Buyer: sess.Identity, Exported: time.Now().UTC(), Licenses: []buyerLicence{}}
	for _, lic := range lics {
		out.Licenses = append(out.Licenses, buyerView(lic))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="my-licences.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// buyerLicence is a licence as its buyer downloads it: their facts, none
// of the author's (recheck state, lock, the installations' addresses).
type buyerLicence struct {
	ID               string              `json:"id"`
	Product          string              `json:"product"`
	Type             string              `json:"type"`
	Status           string              `json:"status"`
	LicensedTo       string              `json:"licensed_to,omitempty"`
	ExpiresAt        *time.Time          `json:"expires_at,omitempty"`
	SupportUntil     *time.Time          `json:"support_until,omitempty"`
	ActivationsLimit int                 `json:"activations_limit"`
	ActivationsUsed  int                 `json:"activations_used"`
	Installations    []buyerInstallation `json:"installations"`
}

type buyerInstallation struct {
	ID            string     `json:"id"`
	Domain        string     `json:"domain"`
	Class         string     `json:"install_class"`
	Label         string     `json:"label,omitempty"`
	Status        string     `json:"status"`
	CreatedAt     time.Time  `json:"created_at"`
	LastSeenAt    *time.Time `json:"last_seen_at,omitempty"`
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"`
}

// buyerView is the allow-list of what a buyer's download holds.
func buyerView(d *gateway.LicenseDetail) buyerLicence {
	l := d.License
	out := buyerLicence{ID: l.ID, Product: l.Product, Type: l.Type, Status: l.Status, LicensedTo: l.LicensedTo,
		ExpiresAt: l.ExpiresAt, SupportUntil: l.SupportUntil, ActivationsLimit: l.ActivationsLimit,
		ActivationsUsed: l.ActivationsUsed, Installations: []buyerInstallation{}}
	for _, in := range d.Installations {
		out.Installations = append(out.Installations, buyerInstallation{ID: in.ID, Domain: in.Domain, Class: in.InstallClass,
			Label: in.Label, Status: in.Status, CreatedAt: in.CreatedAt, LastSeenAt: in.LastSeenAt, DeactivatedAt: in.DeactivatedAt})
	}
	return out
}

// signOut ends the session.
func (p *Portal) signOut(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodPost) {
		return
	}
	if _, err := p.cfg.Sessions.Verify(r); err != nil {
		p.forbidden(w)
		return
	}
	p.cfg.Sessions.End(w, r)
	http.Redirect(w, r, p.rd.Path(), http.StatusSeeOther)
}

// notYours is the 403 page for a licence the sign-in did not prove the
// buyer's: nothing was changed.
func (p *Portal) notYours(w http.ResponseWriter) {
	p.render(w, http.StatusForbidden, web.ErrorPageName, web.Page{Data: web.ErrorPage{
		Title: p.rd.T("notyours.title"), Message: p.rd.T("notyours.message"), RetryURL: p.rd.Path()}})
}

// signedInLicences reads the session and its licences, or answers the
// request (the sign-in page, an outage) and returns false. A licence gone
// since the sign-in is left out.
func (p *Portal) signedInLicences(w http.ResponseWriter, r *http.Request) (web.Session, []*gateway.LicenseDetail, bool) {
	sess, ok := p.cfg.Sessions.Read(r)
	if !ok {
		p.signInPage(w, r, http.StatusOK, p.rd.Path())
		return web.Session{}, nil, false
	}
	owned, ok := p.owned(w, r, sess)
	if !ok {
		return web.Session{}, nil, false
	}
	var lics []*gateway.LicenseDetail
	for _, id := range owned {
		lic, err := p.cfg.Service.OwnedLicence(r.Context(), owned, id)
		switch {
		case errors.Is(err, gateway.ErrNotFound):
			continue
		case err != nil:
			p.unavailable(w, p.rd.Path(), err)
			return web.Session{}, nil, false
		}
		lics = append(lics, lic)
	}
	return sess, lics, true
}

// owned are the licences the session's sign-in proved: in its cookie, or
// kept by the service for a buyer with many (startSession). false: the
// answer was written (an outage, or a kept list gone: sign in again).
func (p *Portal) owned(w http.ResponseWriter, r *http.Request, sess web.Session) ([]string, bool) {
	if sess.Ref == "" {
		return sess.Licenses, true
	}
	ids, err := p.cfg.Service.SignInLicences(r.Context(), sess.Ref)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		p.cfg.Sessions.End(w, r)
		p.signInPage(w, r, http.StatusOK, p.rd.Path())
		return nil, false
	case err != nil:
		p.unavailable(w, p.rd.Path(), err)
		return nil, false
	}
	return ids, true
}

// cookieLicences is how many licence ids a session cookie carries itself
// (about 40 bytes each sealed, within the 4 KiB a browser keeps); a
// sign-in that proved more keeps them with the service.
const cookieLicences = 40

// startSession starts a buyer's session with the licences their sign-in
// proved.
func (p *Portal) startSession(w http.ResponseWriter, r *http.Request, identity string, ids []string) error {
	if len(ids) <= cookieLicences {
		_, err := p.cfg.Sessions.Start(w, r, identity, ids)
		return err
	}
	ref, err := p.cfg.Service.KeepSignIn(r.Context(), ids, p.cfg.Sessions.TTL())
	if err != nil {
		return err
	}
	_, err = p.cfg.Sessions.StartRef(w, r, identity, ref)
	return err
}

// flash sets a message for the next page.
func (p *Portal) flash(w http.ResponseWriter, r *http.Request, kind web.FlashKind, text string) {
	if err := p.cfg.Sessions.SetFlash(w, r, web.Flash{Kind: kind, Text: text}); err != nil {
		p.log.Warn("setting a flash message", zap.Error(err))
	}
}

// failed answers err, if any: a licence or installation that is not the
// buyer's is not found; anything else is an outage.
// refusal is err when it is the gateway's refusal of what the buyer
// asked (its detail is for them), not an outage or an internal error.
func refusal(err error) (*gateway.Error, bool) {
	var ge *gateway.Error
	if !errors.As(err, &ge) {
		return nil, false
	}
	switch ge.Code {
	case gateway.CodeStoreUnavailable, gateway.CodeUpstreamUnavailable, gateway.CodeInternal, gateway.CodeClientClosed:
		return nil, false
	}
	return ge, true
}

func (p *Portal) failed(w http.ResponseWriter, err error, retry string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, gateway.ErrNotOwned):
		p.notYours(w)
	case errors.Is(err, gateway.ErrNotFound):
		p.notFound(w)
	default:
		p.unavailable(w, retry, err)
	}
	return true
}

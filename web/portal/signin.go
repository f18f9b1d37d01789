package portal

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/web"
)

// maxCode bounds an authorization code read from the callback.
const maxCode = 512

// signInData is the sign-in page's.
type signInData struct {
	// EnvatoURL starts "Sign in with Envato" (empty: not offered).
	EnvatoURL string
	// EmailCSRF is the e-mail form's token (empty: no e-mail sign-in).
	EmailCSRF string
}

// signInPage shows the ways to sign in, each returning to returnTo.
func (p *Portal) signInPage(w http.ResponseWriter, r *http.Request, status int, returnTo string) {
	d := signInData{EmailCSRF: p.emailForm(w, r, returnTo)}
	if p.cfg.Envato != nil {
		d.EnvatoURL = p.rd.Path("auth", "envato") + "?" + url.Values{"return": {returnTo}}.Encode()
	}
	p.render(w, status, "signin", web.Page{Data: d})
}

// beginEnvato starts the OAuth flow: the state and PKCE verifier go in the
// browser's sign-in cookie, and the buyer to Envato's authorization page.
func (p *Portal) beginEnvato(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	if p.cfg.Envato == nil {
		p.notFound(w)
		return
	}
	returnTo, ok := web.LocalPath(p.base, r.URL.Query().Get("return"))
	if len(returnTo) > maxReturn {
		ok = false
	}
	if !ok {
		returnTo = p.rd.Path()
	}
	si, err := p.cfg.Sessions.BeginSignIn(w, r, returnTo)
	if err != nil {
		p.log.Error("beginning a sign-in", zap.Error(err))
		p.render(w, http.StatusInternalServerError, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("error.internal.title"), Message: p.rd.T("error.internal.message")}})
		return
	}
	http.Redirect(w, r, p.cfg.Envato.AuthCodeURL(si.ID, si.Verifier), http.StatusSeeOther)
}

// envatoCallback finishes the flow: the state must be this browser's, the
// code is exchanged (with the verifier), and the buyer's purchases name
// the licences the session may see. Envato's token is used for these
// calls only, and kept nowhere.
func (p *Portal) envatoCallback(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodGet) {
		return
	}
	if p.cfg.Envato == nil {
		p.notFound(w)
		return
	}
	q := r.URL.Query()
	si, ok := p.cfg.Sessions.MatchState(r, q.Get("state"))
	if !ok {
		// Another browser's callback, a stale one, or a forged one: it
		// signs nobody in here.
		p.forbidden(w)
		return
	}
	retry := p.rd.Path("auth", "envato") + "?" + url.Values{"return": {si.ReturnTo}}.Encode()
	if !p.signInAllowed(w, r) {
		return
	}
	code := q.Get("code")
	if q.Get("error") != "" || code == "" || len(code) > maxCode {
		p.cfg.Sessions.EndSignIn(w, r)
		p.render(w, http.StatusForbidden, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("signin.cancelled.title"), Message: p.rd.T("signin.cancelled.message"), RetryURL: retry}})
		return
	}
	ctx := r.Context()
	access, err := p.cfg.Envato.Exchange(ctx, code, si.Verifier)
	var username string
	var purchases []upstreams.Purchase
	if err == nil {
		username, err = p.cfg.Envato.Username(ctx, access)
	}
	truncated := false
	if err == nil {
		purchases, err = p.cfg.Envato.Purchases(ctx, access)
		if errors.Is(err, upstreams.ErrPurchasesTruncated) && len(purchases) > 0 {
			truncated, err = true, nil // show what was read, and say so
		}
	}
	if err != nil {
		p.signInFailed(w, r, err, retry)
		return
	}
	keys := p.ownKeys(purchases)
	ids, err := p.cfg.Service.OwnedLicences(ctx, p.cfg.EnvatoSource, keys, p.cfg.Products)
	if err != nil {
		p.unavailable(w, retry, err)
		return
	}
	if err := p.startSession(w, r, "envato:"+username, ids); err != nil {
		p.unavailable(w, retry, err)
		return
	}
	p.log.Info("buyer signed in", zap.String("actor", gateway.BuyerActor("envato", username)), zap.Int("licenses", len(ids)))
	if truncated {
		p.flash(w, r, web.FlashError, p.rd.T("signin.truncated"))
	}
	http.Redirect(w, r, si.ReturnTo, http.StatusSeeOther)
}

// maxReturn bounds the path a sign-in returns to (it rides in a cookie).
const maxReturn = 512

// ownKeys are the codes of the purchases of this portal's products: the
// others (another author's items, other products) are not looked up.
func (p *Portal) ownKeys(purchases []upstreams.Purchase) []string {
	keys := make([]string, 0, len(purchases))
	for _, pu := range purchases {
		if pu.Known() && (len(p.cfg.Products) == 0 || slices.Contains(p.cfg.Products, pu.Product)) {
			keys = append(keys, pu.Key)
		}
	}
	return keys
}

// signInAllowed applies the per-client sign-in limit at the callback: each
// costs the marketplace calls the author's budget pays for (starting one
// costs nothing).
func (p *Portal) signInAllowed(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := p.cfg.SignInLimit.Allow(policy.RateKey(p.clientIP(r)))
	if !ok {
		w.Header().Set("Retry-After", retrySeconds(wait))
		p.render(w, http.StatusTooManyRequests, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("email.limited.title"), Message: p.rd.T("signin.limited"), RetryURL: p.rd.Path()}})
	}
	return ok
}

// signInFailed answers a marketplace error during sign-in: an outage is
// "try again shortly" (never "you have no purchases"); a refused code or
// grant asks the buyer to sign in again.
func (p *Portal) signInFailed(w http.ResponseWriter, r *http.Request, err error, retry string) {
	p.cfg.Sessions.EndSignIn(w, r)
	var be *upstreams.BuyerError
	switch {
	case errors.Is(err, upstreams.ErrBuyerUnavailable):
		p.log.Warn("sign-in: the marketplace is unavailable", zap.Error(err))
		var after time.Duration
		if errors.As(err, &be) {
			after = be.RetryAfter
		}
		if rerr := p.rd.Unavailable(w, retry, after); rerr != nil {
			p.log.Error("rendering a page", zap.Error(rerr))
		}
	case errors.Is(err, upstreams.ErrBuyerRequest):
		// Our request was refused (the app's secret or permissions): the
		// author must fix it; the buyer cannot.
		p.log.Error("sign-in: the marketplace refused the portal's request; check envato_oauth", zap.Error(err))
		p.render(w, http.StatusServiceUnavailable, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("signin.misconfigured.title"), Message: p.rd.T("signin.misconfigured.message")}})
	default:
		p.log.Info("sign-in refused by the marketplace", zap.Error(err))
		p.render(w, http.StatusForbidden, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("signin.refused.title"), Message: p.rd.T("signin.refused.message"), RetryURL: retry}})
	}
}

func (p *Portal) unavailable(w http.ResponseWriter, retry string, err error) {
	p.log.Warn("portal: a service is unavailable", zap.Error(err))
	if rerr := p.rd.Unavailable(w, retry, 0); rerr != nil {
		p.log.Error("rendering a page", zap.Error(rerr))
	}
}

func (p *Portal) forbidden(w http.ResponseWriter) {
	if err := p.rd.Forbidden(w, p.rd.Path()); err != nil {
		p.log.Error("rendering a page", zap.Error(err))
	}
}

package portal

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/web"
)

// Sign-in by e-mail link (SPEC section 12): for licences whose source
// reports the buyer's e-mail address. The buyer enters an address; when
// licences are recorded for it, a single-use link valid LinkTTL is mailed
// to it. The page answers the same whether or not the address is known,
// and the mail goes out after the answer, so neither the page nor its
// timing tells. Requests are limited per client network and per address.

// EmailConfig is the e-mail sign-in.
type EmailConfig struct {
	Mailer Mailer
	// LinkTTL is how long a link is valid (default 15m).
	LinkTTL time.Duration
	// PublicURL is the portal's address as buyers reach it (origin and
	// base path), which the mailed link starts with: never the request's
	// Host header, which whoever asks for a link chooses.
	PublicURL string
	// PerClient and PerAddress limit link requests (nil: the defaults,
	// 10 per 10 minutes per client network, 3 per hour per address).
	PerClient, PerAddress *httpapi.Limiter
}

// Defaults of the e-mail sign-in.
const (
	DefaultLinkTTL = 15 * time.Minute
	// mailers bounds the mails being sent at once: a burst of requests
	// queues no more goroutines than this.
	mailers = 4
)

// emailData is the sign-in page's e-mail form, and the "check your
// inbox" page's.
type emailData struct {
	CSRFToken string
}

// emailForm adds the e-mail form to the sign-in page: a sign-in attempt
// (its own cookie) binds the form's CSRF token.
func (p *Portal) emailForm(w http.ResponseWriter, r *http.Request, returnTo string) string {
	if p.cfg.Email == nil {
		return ""
	}
	si, ok := p.cfg.Sessions.ReadSignIn(r)
	if !ok {
		var err error
		if si, err = p.cfg.Sessions.BeginSignIn(w, r, returnTo); err != nil {
			p.log.Error("beginning a sign-in", zap.Error(err))
			return ""
		}
	}
	return p.cfg.Sessions.SignInCSRFToken(si)
}

// requestLink is the e-mail form's post.
func (p *Portal) requestLink(w http.ResponseWriter, r *http.Request) {
	if !web.Methods(w, r, http.MethodPost) {
		return
	}
	e := p.cfg.Email
	if e == nil {
		p.notFound(w)
		return
	}
	si, err := p.cfg.Sessions.VerifySignIn(r)
	if err != nil {
		p.forbidden(w)
		return
	}
	if ok, wait := e.PerClient.Allow(policy.RateKey(p.clientIP(r))); !ok {
		w.Header().Set("Retry-After", retrySeconds(wait))
		p.render(w, http.StatusTooManyRequests, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("email.limited.title"), Message: p.rd.T("email.limited.message"), RetryURL: p.rd.Path()}})
		return
	}
	addr, err := mail.ParseAddress(strings.TrimSpace(r.PostFormValue("email")))
	if err == nil && len(addr.Address) <= 254 {
		if ok, _ := e.PerAddress.Allow(p.cfg.Service.EmailHash(addr.Address)); ok {
			p.sendLink(addr.Address, si.ReturnTo)
		}
	}
	// The same page for a known address, an unknown one, one over its
	// limit, or no address at all.
	p.render(w, http.StatusOK, "email-sent", web.Page{})
}

// sendLink looks the address up and mails it a link, after the answer and
// within mailers at once (a request beyond them sends nothing, and is
// logged).
func (p *Portal) sendLink(email, returnTo string) {
	select {
	case p.sending <- struct{}{}:
	default:
		p.log.Warn("e-mail sign-in: too many mails in flight; a link was not sent")
		return
	}
	go func() {
		defer func() { <-p.sending }()
		ctx, cancel := context.WithTimeout(context.Background(), smtpTimeout+5*time.Second)
		defer cancel()
		actor := p.cfg.Service.EmailActor(email)
		ids, err := p.cfg.Service.EmailLicences(ctx, email, p.cfg.Products)
		if err != nil || len(ids) == 0 {
			if err != nil {
				p.log.Warn("e-mail sign-in: looking licences up failed", zap.String("actor", actor), zap.Error(err))
			}
			return // nothing to sign in to: no mail, the same page
		}
		e := p.cfg.Email
		token, err := p.cfg.Service.IssueEmailLink(ctx, gateway.EmailLink{Email: email, Licenses: ids, ReturnTo: returnTo}, e.LinkTTL)
		if err != nil {
			p.log.Warn("e-mail sign-in: keeping a link failed", zap.String("actor", actor), zap.Error(err))
			return
		}
		link := strings.TrimSuffix(e.PublicURL, "/") + "/auth/email/" + token
		body := strings.NewReplacer("{link}", link, "{minutes}", minutes(e.LinkTTL)).Replace(p.rd.T("email.body"))
		if err := e.Mailer.Send(ctx, email, p.rd.T("email.subject"), body); err != nil {
			p.log.Warn("e-mail sign-in: sending the link failed", zap.String("actor", actor), zap.Error(err))
			return
		}
		p.log.Info("e-mail sign-in: link sent", zap.String("actor", actor))
	}()
}

// redeemLink signs in with a mailed link, once. Opening the link (GET)
// only shows a "Sign in" button: mail scanners and link previews fetch
// links before the buyer does, and would spend a single-use link on
// their own. The button's post (bound to this browser by the sign-in
// cookie and its CSRF token, so another site cannot sign a visitor in
// with its own link) spends it.
func (p *Portal) redeemLink(w http.ResponseWriter, r *http.Request, token string) {
	if !web.Methods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	e := p.cfg.Email
	if e == nil {
		p.notFound(w)
		return
	}
	if r.Method != http.MethodPost {
		p.render(w, http.StatusOK, "email-confirm", web.Page{Data: emailData{CSRFToken: p.emailForm(w, r, p.rd.Path())}})
		return
	}
	if _, err := p.cfg.Sessions.VerifySignIn(r); err != nil {
		p.forbidden(w)
		return
	}
	l, err := p.cfg.Service.RedeemEmailLink(r.Context(), token, e.LinkTTL)
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		p.render(w, http.StatusForbidden, web.ErrorPageName, web.Page{Data: web.ErrorPage{
			Title: p.rd.T("email.spent.title"), Message: p.rd.T("email.spent.message"), RetryURL: p.rd.Path()}})
		return
	case err != nil:
		p.unavailable(w, p.rd.Path(), err)
		return
	}
	actor := p.cfg.Service.EmailActor(l.Email)
	if err := p.startSession(w, r, "email:"+strings.TrimPrefix(actor, "buyer:email:"), l.Licenses); err != nil {
		p.unavailable(w, p.rd.Path(), err)
		return
	}
	p.log.Info("buyer signed in", zap.String("actor", actor), zap.Int("licenses", len(l.Licenses)))
	to, ok := web.LocalPath(p.base, l.ReturnTo)
	if !ok {
		to = p.rd.Path()
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (p *Portal) clientIP(r *http.Request) string {
	if p.cfg.ClientIP != nil {
		return p.cfg.ClientIP(r)
	}
	return httpapi.RemoteHost(r)
}

func retrySeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

func minutes(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Minute)/time.Minute)))
}

// emailLimits are the default limits of link requests.
func emailLimits(e *EmailConfig) {
	if e.PerClient == nil {
		e.PerClient = httpapi.NewLimiter(upstreams.Rate{Calls: 10, Period: 10 * time.Minute})
	}
	if e.PerAddress == nil {
		e.PerAddress = httpapi.NewLimiter(upstreams.Rate{Calls: 3, Period: time.Hour})
	}
	if e.LinkTTL <= 0 {
		e.LinkTTL = DefaultLinkTTL
	}
}

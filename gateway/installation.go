package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// credential is what deactivate, move and status authenticate with: an
// installation at one token generation.
type credential struct {
	licenseID, installationID string
	generation                int64
}

func credentialOf(c *tokens.Claims) credential {
	return credential{c.License, c.Subject, c.Generation}
}

// authenticate accepts an unspent refresh token, or an access token (of
// any product) through the gate's verification.
func (s *Service) authenticate(ctx context.Context, token string) (credential, error) {
	if token == "" {
		return credential{}, invalidToken("An access token or refresh token is required.", nil)
	}
	if strings.HasPrefix(token, tokens.RefreshPrefix) {
		fam, hash, err := s.refreshFamily(ctx, token)
		if err != nil {
			return credential{}, err
		}
		if hash != fam.Current {
			return credential{}, invalidToken("The refresh token was already used.", nil)
		}
		return familyCredential(fam), nil
	}
	c, err := s.gate.verify(ctx, token, s.now())
	if err != nil {
		return credential{}, err
	}
	return credentialOf(c), nil
}

var errNoInstallation = errors.New("installation not found")

// holder returns the installation the credential names in st, if it still
// honours tokens of the credential's generation.
func (c credential) holder(st *store.LicenseState) (*store.Installation, error) {
	ins := installationOf(st, c.installationID)
	if ins == nil {
		return nil, invalidToken("The token does not belong to a known installation.", errNoInstallation)
	}
	if e := tokenRefusal(ins, c.generation); e != nil {
		return nil, e
	}
	return ins, nil
}

// admitted is holder plus the licence's standing: what the gate, a
// refresh, a move and a status request require.
func (s *Service) admitted(c credential, st *store.LicenseState, now time.Time) (*store.Installation, error) {
	ins, err := c.holder(st)
	if err != nil {
		return nil, err
	}
	if ref := policy.Standing(s.policyLicense(st.License), now); ref != nil {
		return nil, fromRefusal(ref)
	}
	return ins, nil
}

// Deactivate frees an installation's slot and revokes its tokens, at the
// request of its installation from clientIP (the connection's address,
// audited). Tokens a re-activation from another network was given may
// not (installation_contested), and the attempt counts toward the
// licence's leak_threshold.
func (s *Service) Deactivate(ctx context.Context, token, clientIP string) (err error) {
	ctx, done := s.observe(ctx, EndpointDeactivate)
	defer func() { done(err) }()
	cred, err := s.authenticate(ctx, token)
	if err != nil {
		return err
	}
	now := s.now()
	find := func(st *store.LicenseState) (*store.Installation, error) {
		ins, err := cred.holder(st)
		if err != nil {
			return nil, err
		}
		if contested(ins, now) {
			return nil, contestedError(ins, now)
		}
		return ins, nil
	}
	_, err = s.deactivate(ctx, cred.licenseID, cred.installationID, find,
		store.AuditEvent{Actor: ActorInstaller, ClientIP: clientIP})
	s.noteContested(ctx, cred.licenseID, clientIP, err)
	return err
}

// contestedError is the refusal of a contested installation's deactivate
// or move.
func contestedError(ins *store.Installation, now time.Time) *Error {
	return &Error{Code: CodeInstallationContested, RetryAfter: retryAfter(ins.ForeignUntil.Sub(now)),
		Detail: "This installation was re-activated from another network recently, so it cannot be deactivated or moved from there yet. " +
			"Re-activating it from the site's own server restores full control."}
}

// noteContested counts a refused deactivate or move with contested tokens
// as a sighting of the client's network (leak_threshold): a leaked code's
// holder trying to take the buyer's installation locks the licence, and
// the buyer's own re-activation still works (homeReactivation).
func (s *Service) noteContested(ctx context.Context, licenseID, clientIP string, refusal error) {
	var e *Error
	if !errors.As(refusal, &e) || e.Code != CodeInstallationContested {
		return
	}
	now := s.now()
	_, err := s.cfg.Store.UpdateLicense(ctx, licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		lic := st.License
		if lic == nil || lic.Locked {
			return nil, nil
		}
		p := s.product(lic.Product)
		if p == nil {
			return nil, nil
		}
		changed, lock := observeLeak(p, lic, st, policyInstallations(st.Installations), "", clientIP, true, now)
		if lock != "" {
			lic.Locked, lic.UpdatedAt = true, now
			s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditLicenseLocked,
				LicenseID: lic.ID, Reason: lock, ClientIP: clientIP})
		}
		if !changed && lock == "" {
			return nil, nil
		}
		return st, nil
	})
	if err != nil {
		s.log.Warn("recording a contested installation's sighting", zap.Error(err))
	}
}

// deactivate marks an installation deactivated, which frees its slot and
// stops every token it holds, and audits ev (filled in with the ids and
// the domain). find returns the installation or refuses; one already
// deactivated is left as it is, unaudited. It returns the licence's state.
func (s *Service) deactivate(ctx context.Context, licenseID, installationID string,
	find func(*store.LicenseState) (*store.Installation, error), ev store.AuditEvent) (*store.LicenseState, error) {
	now := s.now()
	var refusal error
	var gone store.Installation
	st, err := s.cfg.Store.UpdateLicense(ctx, licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		gone = store.Installation{}
		ins, err := find(st)
		if refusal = err; err != nil || ins.Status == store.InstallationDeactivated {
			return nil, nil
		}
		gone = *ins
		ins.Status = store.InstallationDeactivated
		ins.Generation++
		ins.DeactivatedAt, ins.UpdatedAt = now, now
		pruneInstallations(st, now)
		ev.Action, ev.LicenseID, ev.InstallationID, ev.Detail = store.AuditInstallationDeactivated, licenseID, installationID, ins.Domain
		s.event(ctx, st, ev)
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if refusal != nil {
		return nil, refusal
	}
	s.detachAddons(ctx, gone, ev.Actor, "its base installation "+gone.ID+" was deactivated")
	return st, nil
}

// MoveRequest moves an installation to a new domain.
type MoveRequest struct {
	Token  string
	Domain string
	// ClientIP is the connection's address, audited.
	ClientIP string
}

// Move moves an installation to a new domain, keeping its id and history.
// Its old tokens stop working; a fresh pair is returned. The new refresh
// family is stored before the move commits and the access token is signed
// in the same decision, so a failure at any step leaves the installation
// on its old domain with its old tokens working.
func (s *Service) Move(ctx context.Context, req MoveRequest) (_ *Activation, err error) {
	ctx, done := s.observe(ctx, EndpointMove)
	defer func() { done(err) }()
	domain, problem := domainField(req.Domain)
	if problem != "" {
		return nil, Validation("domain", problem)
	}
	cred, err := s.authenticate(ctx, req.Token)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	// Decide on a read first, so a refused move stores no family.
	cur, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if _, _, refusal := s.decideMove(cur, cred, domain, now); refusal != nil {
		s.noteContested(ctx, cred.licenseID, req.ClientIP, refusal)
		return nil, refusal
	}
	ents, err := s.entitlements(ctx, cur.License, installationOf(cur, cred.installationID))
	if err != nil {
		return nil, err
	}
	// The family carries the generation the move gives the installation
	// (decideMove requires cred's generation), so it is live exactly when
	// the move has committed. Nobody holds its token until Move returns.
	rt, fam := s.newFamily(cred.licenseID, store.Installation{ID: cred.installationID, Generation: cred.generation + 1})
	if err := s.cfg.Store.PutRefreshFamily(ctx, fam); err != nil {
		return nil, storeUnavailable(err)
	}
	var refusal error
	var moved store.Installation
	var from, superseded string
	var toks *Tokens
	st, err := s.cfg.Store.UpdateLicense(ctx, cred.licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		toks = nil // fn may run more than once
		moved, from, refusal = s.decideMove(st, cred, domain, now)
		if refusal != nil {
			return nil, nil
		}
		if toks, refusal = s.signLoaded(st.License, moved, ents); refusal != nil {
			return nil, nil
		}
		if in := st.Installation(moved.ID); in != nil {
			superseded, in.Family = in.Family, fam.ID
			moved.Family = fam.ID
		}
		pruneInstallations(st, now)
		s.event(ctx, st, Event{Actor: ActorInstaller, Action: store.AuditInstallationMoved,
			LicenseID: moved.LicenseID, InstallationID: moved.ID, Detail: from + " -> " + moved.Domain, ClientIP: req.ClientIP})
		return st, nil
	})
	if err != nil {
		err = storeUnavailable(err)
	} else if refusal != nil {
		err = refusal
	}
	if err != nil {
		s.dropFamily(ctx, fam.ID)
		return nil, err
	}
	toks.RefreshToken = rt
	if superseded != "" {
		s.dropFamily(ctx, superseded) // its tokens stopped with the move
	}
	if s.followMove(ctx, moved) {
		// An add-on stayed behind: the answer's token should not list it.
		// Failing that, the one signed stands (the move has committed, its
		// old tokens are gone); the gate decides on the add-on anyway.
		if resigned, err := s.sign(ctx, st.License, moved); err == nil {
			resigned.RefreshToken, toks, ents = rt, resigned, resigned.ents
		}
	}
	view := s.view(st, &moved)
	view.Entitlements = ents
	return &Activation{Tokens: *toks, License: view}, nil
}

// decideMove applies a move of cred's installation to domain to st, or
// says why not. It does no I/O, so it serves both the read that decides
// before anything is stored and the UpdateLicense that commits.
func (s *Service) decideMove(st *store.LicenseState, cred credential, domain string, now time.Time) (moved store.Installation, from string, refusal error) {
	ins, err := s.admitted(cred, st, now)
	if err != nil {
		return moved, "", err
	}
	if contested(ins, now) {
		return moved, "", contestedError(ins, now)
	}
	if ins.Domain == domain {
		// Not a no-op that hands out tokens: a fresh pair here would be
		// a second refresh family beside the first, and a copied access
		// token could start one that reuse detection never sees.
		return moved, "", &Error{Code: CodeDomainInUse, Detail: "This installation is already on that domain."}
	}
	p := s.product(st.License.Product)
	if p == nil {
		return moved, "", &Error{Code: CodeWrongProduct, Detail: "This licence's product is no longer served here."}
	}
	if wait := st.License.LastMoveAt.Add(p.MoveCooldown).Sub(now); !st.License.LastMoveAt.IsZero() && wait > 0 {
		return moved, "", &Error{Code: CodeMoveCooldown, Detail: "This licence was moved recently. Please try again later.", RetryAfter: retryAfter(wait)}
	}
	d, ref := p.Rules.DecideActivation(s.policyLicense(st.License), policyInstallations(st.Installations), domain, ins.ID, now)
	if ref != nil {
		return moved, "", fromRefusal(ref)
	}
	from = ins.Domain
	ins.Domain, ins.InstallClass, ins.MarkedStaging = domain, string(d.Class), false
	ins.Generation++
	ins.UpdatedAt = now
	st.License.LastMoveAt = now
	return *ins, from, nil
}

// dropFamily deletes a family whose token was never handed out, even when
// ctx has ended; a failure only leaves a record nobody can use to expire.
func (s *Service) dropFamily(ctx context.Context, id string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.DeleteRefreshFamily(dctx, id); err != nil {
		s.log.Warn("deleting an unused refresh family", zap.Error(err))
	}
}

// Status returns the licence block for the installation a token belongs to,
// from the store.
func (s *Service) Status(ctx context.Context, token string) (*LicenseView, error) {
	cred, err := s.authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	st, ins, err := s.activeInstallation(ctx, cred)
	if err != nil {
		return nil, err
	}
	v := s.view(st, ins)
	if v.Entitlements, err = s.entitlements(ctx, st.License, ins); err != nil {
		return nil, err
	}
	if len(ins.Addons) > 0 {
		v.Addons = s.addonViews(ctx, ins)
	}
	return &v, nil
}

func installationOf(st *store.LicenseState, id string) *store.Installation {
	if st.License == nil {
		return nil
	}
	return st.Installation(id)
}

// tokenRefusal checks an installation still honours tokens of generation
// gen.
func tokenRefusal(ins *store.Installation, gen int64) *Error {
	switch {
	case ins.Status == store.InstallationDeactivated:
		return &Error{Code: CodeInstallationInactive, Detail: "This installation has been deactivated."}
	case ins.Status == store.InstallationReleased:
		return &Error{Code: CodeInstallationReleased, Detail: "This installation was unused for too long and released its activation. Please enter the licence key again."}
	case ins.Status != store.InstallationActive:
		return &Error{Code: CodeTokenRevoked, Detail: "This installation's tokens have been revoked."}
	case ins.Generation != gen:
		return &Error{Code: CodeTokenRevoked, Detail: "This token has been replaced or revoked."}
	}
	return nil
}

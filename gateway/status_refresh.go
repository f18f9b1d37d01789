package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// RefreshStatus is POST {prefix}/status/refresh (SPEC section 7: the buyer
// or the product asks): a recheck now of the licence the token's
// installation belongs to, then the licence block. checked says whether
// the source gave an answer the recheck acts on (valid, or a definitive
// invalid).
//
// The installation must still hold tokens; the licence's standing is not
// asked before the check, so a buyer whose licence expired and who renewed
// can ask (with the refresh token, as for deactivate, once the access
// token has run out: a licence out of service cannot renew it). After a
// check the answer is Status's, a refusal included; without one it is the
// stored block with checked false, never an error about the licence.
func (s *Service) RefreshStatus(ctx context.Context, token string) (_ *LicenseView, _ bool, err error) {
	ctx, done := s.observe(ctx, EndpointStatusRefresh)
	defer func() { done(err) }()
	cred, err := s.authenticate(ctx, token)
	if err != nil {
		return nil, false, err
	}
	if _, _, err := s.holderState(ctx, cred); err != nil {
		return nil, false, err
	}
	checked, err := s.AskRecheck(ctx, cred.licenseID)
	if err != nil {
		return nil, false, err
	}
	if !checked {
		st, ins, err := s.holderState(ctx, cred)
		if err != nil {
			return nil, false, err
		}
		v := s.view(st, ins)
		return &v, false, nil
	}
	st, ins, err := s.activeInstallation(ctx, cred)
	if err != nil {
		return nil, false, err
	}
	v := s.view(st, ins)
	return &v, true, nil
}

// holderState reads the licence a credential names and its installation,
// which must still honour the credential's tokens; the licence's standing
// is not asked.
func (s *Service) holderState(ctx context.Context, cred credential) (*store.LicenseState, *store.Installation, error) {
	st, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	ins, err := cred.holder(st)
	if err != nil {
		return nil, nil, err
	}
	return st, ins, nil
}

// askTimeout bounds a buyer's check once it has begun: it runs on when
// the client leaves, so that an answer the source gave is written and the
// cooldown it spent was worth it.
const askTimeout = 30 * time.Second

// AskRecheck rechecks a licence now because its buyer asked ("I renewed"):
// at most once per its product's refresh_cooldown (429 refresh_cooldown
// with Retry-After beyond), by the schedule's rules (the product's mode,
// the source's recheck budget, which a buyer does not wait for; manual
// mode flags), and never taking the licence out of service itself (a
// refund it sees flags the licence and makes it due for the schedule at
// once). It reports whether the source gave an answer the recheck acts
// on. An ask that asked nobody (mode off, the budget spent) gives the
// cooldown back.
func (s *Service) AskRecheck(ctx context.Context, licenseID string) (bool, error) {
	claim, err := s.claimAsk(ctx, licenseID)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), askTimeout)
	defer cancel()
	out, err := s.recheckLicense(cctx, licenseID, 0, askedByBuyer)
	if err != nil || out.Outcome == RecheckDeferred || out.Outcome == RecheckOff {
		s.releaseAsk(licenseID, claim)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return false, ErrNotFound
	case err != nil:
		return false, storeUnavailable(err)
	}
	return out.Outcome == policy.CheckValid || out.Outcome == policy.CheckInvalid && policy.Definitive(out.Reason), nil
}

// askClaim is a recorded ask: when, and the ask it replaced.
type askClaim struct{ at, prev time.Time }

// claimAsk records a buyer's ask on the licence, or refuses it while the
// last one is within the cooldown. Kept on the licence, the cooldown holds
// across instances.
func (s *Service) claimAsk(ctx context.Context, licenseID string) (askClaim, error) {
	var refusal *Error
	var claim askClaim
	st, err := s.cfg.Store.UpdateLicense(ctx, licenseID, func(cur *store.LicenseState) (*store.LicenseState, error) {
		refusal = nil
		lic := cur.License
		if lic == nil {
			return nil, nil
		}
		now := s.now()
		last := lic.RefreshAskedAt
		if wait := last.Add(s.refreshCooldown(lic.Product)).Sub(now); !last.IsZero() && wait > 0 {
			refusal = &Error{Code: CodeRefreshCooldown, Detail: "This licence was checked a moment ago. Please try again later.", RetryAfter: retryAfter(wait)}
			return nil, nil
		}
		claim = askClaim{at: now, prev: last}
		lic.RefreshAskedAt = now
		cur.Events = nil
		return cur, nil
	})
	switch {
	case err != nil:
		return askClaim{}, storeUnavailable(err)
	case refusal != nil:
		return askClaim{}, refusal
	case st == nil:
		return askClaim{}, ErrNotFound
	}
	return claim, nil
}

// releaseAsk gives back an ask that asked nobody, unless another ask has
// been recorded since. A failure only leaves the cooldown running.
func (s *Service) releaseAsk(licenseID string, claim askClaim) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.cfg.Store.UpdateLicense(ctx, licenseID, func(cur *store.LicenseState) (*store.LicenseState, error) {
		if cur.License == nil || !cur.License.RefreshAskedAt.Equal(claim.at) {
			return nil, nil
		}
		cur.License.RefreshAskedAt = claim.prev
		cur.Events = nil
		return cur, nil
	})
}

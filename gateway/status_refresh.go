package gateway

import (
	"context"
	"errors"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// RefreshStatus is POST {prefix}/status/refresh (SPEC section 7: the buyer
// or the product asks): a recheck now of the licence the token's
// installation belongs to, then the licence block as Status answers it.
// checked says whether the source answered (valid or invalid); when it
// did not (an outage, its budget spent, mode off) the block is the stored
// one and nothing about the licence is an error.
//
// The installation must still hold tokens, but its licence need not be in
// good standing before the check: a buyer whose licence expired and who
// renewed asks precisely then. After the check the standing is Status's.
func (s *Service) RefreshStatus(ctx context.Context, token string) (_ *LicenseView, _ bool, err error) {
	ctx, done := s.observe(ctx, EndpointStatusRefresh)
	defer func() { done(err) }()
	cred, err := s.authenticate(ctx, token)
	if err != nil {
		return nil, false, err
	}
	st, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, false, storeUnavailable(err)
	}
	if _, err := cred.holder(st); err != nil {
		return nil, false, err
	}
	checked, err := s.AskRecheck(ctx, cred.licenseID)
	if err != nil {
		return nil, false, err
	}
	st, ins, err := s.activeInstallation(ctx, cred)
	if err != nil {
		return nil, false, err
	}
	v := s.view(st, ins)
	return &v, checked, nil
}

// AskRecheck rechecks a licence now because its buyer asked ("I renewed"):
// at most once per its product's refresh_cooldown (429 refresh_cooldown
// with Retry-After beyond), by the schedule's rules (the product's mode,
// the source's recheck budget, manual mode flags rather than suspends), so
// asking can do no more than a scheduled recheck. It reports whether the
// source answered.
func (s *Service) AskRecheck(ctx context.Context, licenseID string) (bool, error) {
	if err := s.claimAsk(ctx, licenseID); err != nil {
		return false, err
	}
	out, err := s.recheckLicense(ctx, licenseID, 0, askedByBuyer)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, ErrNotFound
	case err != nil:
		return false, storeUnavailable(err)
	}
	return out.Outcome == policy.CheckValid || out.Outcome == policy.CheckInvalid, nil
}

// claimAsk records a buyer's ask on the licence, or refuses it while the
// last one is within the cooldown. Kept on the licence, the cooldown holds
// across instances.
func (s *Service) claimAsk(ctx context.Context, licenseID string) error {
	var refusal *Error
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
		lic.RefreshAskedAt = now
		cur.Events = nil
		return cur, nil
	})
	switch {
	case err != nil:
		return storeUnavailable(err)
	case refusal != nil:
		return refusal
	case st == nil:
		return ErrNotFound
	}
	return nil
}

package gateway

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// Refresh spends a refresh token and returns a new token pair in the same
// family. A spent token presented again means two copies of one
// installation exist: the installation is marked cloned, which revokes all
// its tokens, and the answer is refresh_token_reused.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	rec, err := s.refreshRecord(ctx, refreshToken)
	if err != nil {
		return nil, err
	}
	if !rec.SpentAt.IsZero() {
		return nil, s.refreshReused(ctx, rec)
	}
	st, ins, err := s.activeInstallation(ctx, credential{rec.LicenseID, rec.InstallationID, rec.Generation})
	if err != nil {
		return nil, err
	}
	next, nextRec := s.newRefresh(rec.LicenseID, *ins, rec.Family)
	spent, err := s.cfg.Store.SpendRefreshToken(ctx, rec.Hash, s.now(), nextRec)
	switch {
	case errors.Is(err, store.ErrRefreshSpent):
		return nil, s.refreshReused(ctx, spent) // lost a race with another copy
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidToken("The refresh token is not valid.", err)
	case err != nil:
		return nil, storeUnavailable(err)
	}
	toks, err := s.issue(ctx, st.License, *ins, rec.Family)
	if err != nil {
		return nil, err
	}
	toks.RefreshToken = next
	return toks, nil
}

// refreshRecord finds an unexpired refresh token's record (spent or not).
func (s *Service) refreshRecord(ctx context.Context, token string) (*store.RefreshToken, error) {
	if _, err := tokens.RefreshFamily(token); err != nil {
		return nil, invalidToken("The refresh token is not valid.", err)
	}
	rec, err := s.cfg.Store.RefreshToken(ctx, s.refreshHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidToken("The refresh token is not valid.", err)
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if !s.now().Before(rec.ExpiresAt) {
		return nil, invalidToken("The refresh token has expired; activate the licence again.", nil)
	}
	return rec, nil
}

func (s *Service) refreshReused(ctx context.Context, rec *store.RefreshToken) error {
	now := s.now()
	marked := false
	_, err := s.cfg.Store.UpdateLicense(ctx, rec.LicenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		ins := st.Installation(rec.InstallationID)
		marked = false
		if st.License == nil || ins == nil || ins.Status == store.InstallationCloned {
			return nil, nil
		}
		marked = true
		ins.Status = store.InstallationCloned
		ins.Generation++
		ins.UpdatedAt = now
		return st, nil
	})
	if err != nil {
		return storeUnavailable(err)
	}
	if marked {
		s.audit(ctx, store.AuditEvent{Actor: ActorGateway, Action: store.AuditInstallationCloned,
			LicenseID: rec.LicenseID, InstallationID: rec.InstallationID, Reason: "refresh token reused"})
	}
	s.log.Warn("refresh token reused: installation marked cloned",
		zap.String("installation_id", rec.InstallationID), zap.String("license_id", rec.LicenseID))
	return &Error{Code: CodeRefreshTokenReused, Detail: "This refresh token was already used. The installation's tokens have been revoked; activate the licence again."}
}

// activeInstallation loads the credential's installation from the store
// and checks it is still admitted.
func (s *Service) activeInstallation(ctx context.Context, cred credential) (*store.LicenseState, *store.Installation, error) {
	st, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	ins, e := s.admitted(cred, st, s.now())
	if e != nil {
		return nil, nil, e
	}
	return st, ins, nil
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// Refresh rotates a refresh token: it answers a new token pair in the same
// family, and the token presented is spent (SPEC section 4, POST token).
//
// Each family is one stored record: its current token's keyed hash and the
// token before it, with the answer that rotation gave sealed with the
// master secret. The access token is signed before anything is written, so
// a failure never spends the buyer's credential. The token rotated last,
// presented again while its successor is unused (PHP workers sharing one
// stored token, or a retry after a lost answer) is an honest client: within
// Config.RefreshReuseGrace it gets that same answer again, later a fresh
// pair that revokes the unused successor (repeat). A spent token whose
// successor was used means two copies of one installation: it is marked
// cloned, which revokes all its tokens, and the answer is
// refresh_token_reused.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (_ *Tokens, err error) {
	ctx, done := s.observe(ctx, EndpointRefresh)
	defer func() { done(err) }()
	fam, hash, err := s.refreshFamily(ctx, refreshToken)
	if err != nil {
		return nil, err
	}
	switch hash {
	case fam.Current:
		return s.rotate(ctx, fam, hash)
	case fam.Previous:
		return s.repeat(ctx, fam)
	}
	return nil, s.refreshReused(ctx, fam)
}

// rotate spends fam's current token (hash) for a new pair.
func (s *Service) rotate(ctx context.Context, fam *store.RefreshFamily, hash string) (*Tokens, error) {
	toks, next, err := s.nextPair(ctx, fam, hash)
	if err != nil {
		return nil, err // nothing written: the token still works
	}
	stored, err := s.cfg.Store.RotateRefreshFamily(ctx, hash, next)
	switch {
	case errors.Is(err, store.ErrRefreshSpent):
		// Another request with this token rotated first: a sibling worker
		// (the same answer again, within the grace) or another copy.
		if stored.Previous == hash {
			return s.repeat(ctx, stored)
		}
		return nil, s.refreshReused(ctx, stored)
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidToken("The refresh token is not valid.", err)
	case err != nil:
		return nil, storeUnavailable(err)
	}
	return toks, nil
}

// nextPair signs a new pair for fam's installation and returns it with
// the family's record after it: the new token current, previous the
// token it is the successor of, and (with a grace) the answer sealed for a
// retry. It writes nothing, so a failure never spends a credential.
func (s *Service) nextPair(ctx context.Context, fam *store.RefreshFamily, previous string) (*Tokens, store.RefreshFamily, error) {
	st, ins, err := s.activeInstallation(ctx, familyCredential(fam))
	if err != nil {
		return nil, store.RefreshFamily{}, err
	}
	toks, err := s.sign(ctx, st.License, *ins)
	if err != nil {
		return nil, store.RefreshFamily{}, err
	}
	rt, _ := tokens.NewRefresh(fam.ID)
	toks.RefreshToken = rt
	now := s.now()
	next := *fam
	next.Current, next.Counter = s.refreshHash(rt), fam.Counter+1
	next.IssuedAt, next.ExpiresAt = now, now.Add(s.cfg.RefreshTTL)
	next.Previous, next.PreviousSpentAt, next.SealedSuccessor, next.Reissues = previous, now, nil, 0
	if s.cfg.RefreshReuseGrace > 0 {
		if next.SealedSuccessor, err = s.sealSuccessor(&next, toks); err != nil {
			return nil, store.RefreshFamily{}, AsError(err)
		}
	}
	return toks, next, nil
}

// repeat answers fam's preceding token presented again. Its successor
// (fam.Current) has never been presented, or fam.Previous would have moved
// on, so this is an honest client: a sibling worker racing the rotation,
// or a retry after a lost answer, however late. Within the grace it gets
// the answer that rotation gave (siblings end up holding one pair); after
// it, a fresh pair, and the unused successor is revoked (issue 20, N6).
// Reuse is only a spent token whose successor was used (refreshReused).
func (s *Service) repeat(ctx context.Context, fam *store.RefreshFamily) (*Tokens, error) {
	grace := s.cfg.RefreshReuseGrace
	elapsed := s.now().Sub(fam.PreviousSpentAt)
	if grace <= 0 || len(fam.SealedSuccessor) == 0 || elapsed > grace {
		if fam.Reissues >= maxReissues {
			// A lost answer is retried a few times, not for ever: a spent
			// token that keeps coming back while nobody uses what it gets
			// is a copy handed around (a nulled build), not a retry.
			return nil, s.refreshReused(ctx, fam)
		}
		return s.reissue(ctx, fam)
	}
	if _, _, err := s.activeInstallation(ctx, familyCredential(fam)); err != nil {
		return nil, err
	}
	toks, err := s.openSuccessor(fam)
	if err != nil {
		return nil, AsError(err)
	}
	toks.ExpiresIn = max(0, toks.ExpiresIn-int(max(elapsed, 0)/time.Second))
	return toks, nil
}

// maxReissues is how many fresh pairs one spent token may get after the
// grace while its successors go unused (repeat).
const maxReissues = 3

// reissue answers fam's preceding token, presented again after the grace
// while its successor is unused, with a fresh pair that replaces that
// successor (which then no longer refreshes). The preceding token stays
// the one before the new current, so a further lost answer is retried the
// same way.
func (s *Service) reissue(ctx context.Context, fam *store.RefreshFamily) (*Tokens, error) {
	toks, next, err := s.nextPair(ctx, fam, fam.Previous)
	if err != nil {
		return nil, err
	}
	next.Reissues = fam.Reissues + 1
	stored, err := s.cfg.Store.RotateRefreshFamily(ctx, fam.Current, next)
	switch {
	case errors.Is(err, store.ErrRefreshSpent):
		if stored.Previous == fam.Previous {
			return s.repeat(ctx, stored) // a sibling's retry reissued first
		}
		return nil, s.refreshReused(ctx, stored) // the successor was used meanwhile
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidToken("The refresh token is not valid.", err)
	case err != nil:
		return nil, storeUnavailable(err)
	}
	s.log.Info("refresh retried after its answer was lost: a fresh pair, the unused one revoked",
		zap.String("installation_id", fam.InstallationID))
	return toks, nil
}

// successorAAD binds a sealed answer to its family and to the tokens it
// was the rotation between.
func successorAAD(fam *store.RefreshFamily) []byte {
	return []byte("refresh-successor:" + fam.ID + ":" + fam.Previous + ":" + fam.Current)
}

func (s *Service) sealSuccessor(fam *store.RefreshFamily, toks *Tokens) ([]byte, error) {
	raw, err := json.Marshal(toks)
	if err != nil {
		return nil, err
	}
	return s.cfg.Master.Seal(raw, successorAAD(fam)), nil
}

func (s *Service) openSuccessor(fam *store.RefreshFamily) (*Tokens, error) {
	raw, err := s.cfg.Master.Open(fam.SealedSuccessor, successorAAD(fam))
	if err != nil {
		return nil, err
	}
	var toks Tokens
	if err := json.Unmarshal(raw, &toks); err != nil {
		return nil, err
	}
	return &toks, nil
}

// refreshFamily finds the record of an unexpired refresh token's family
// and returns it with the token's keyed hash.
func (s *Service) refreshFamily(ctx context.Context, token string) (*store.RefreshFamily, string, error) {
	id, err := tokens.RefreshFamily(token)
	if err != nil {
		return nil, "", invalidToken("The refresh token is not valid.", err)
	}
	fam, err := s.cfg.Store.RefreshFamily(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", invalidToken("The refresh token is not valid.", err)
	}
	if err != nil {
		return nil, "", storeUnavailable(err)
	}
	if !s.now().Before(fam.ExpiresAt) {
		return nil, "", invalidToken("The refresh token has expired; activate the licence again.", nil)
	}
	return fam, s.refreshHash(token), nil
}

// refreshReused handles a spent token of fam presented again. While fam is
// the installation's live family that means two copies exist: the
// installation is marked cloned. A family that an earlier deactivation,
// move or re-activation revoked marks nothing (a holder of its old tokens
// must not be able to take down the installation that superseded them).
func (s *Service) refreshReused(ctx context.Context, fam *store.RefreshFamily) error {
	now := s.now()
	marked, stale := false, false
	var cloned store.Installation
	_, err := s.cfg.Store.UpdateLicense(ctx, fam.LicenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		ins := st.Installation(fam.InstallationID)
		marked, stale = false, false
		if st.License == nil || ins == nil || ins.Status == store.InstallationCloned {
			return nil, nil
		}
		if ins.Generation != fam.Generation {
			stale = true
			return nil, nil
		}
		marked = true
		ins.Status = store.InstallationCloned
		ins.Generation++
		ins.UpdatedAt = now
		cloned = *ins
		s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditInstallationCloned,
			LicenseID: fam.LicenseID, InstallationID: fam.InstallationID, Reason: "refresh token reused"})
		return st, nil
	})
	if err != nil {
		return storeUnavailable(err)
	}
	if stale {
		return &Error{Code: CodeTokenRevoked, Detail: "This token has been replaced or revoked."}
	}
	if marked {
		s.detachAddons(ctx, cloned, ActorGateway, "its base installation "+cloned.ID+" was marked cloned")
		s.log.Warn("refresh token reused: installation marked cloned",
			zap.String("installation_id", fam.InstallationID), zap.String("license_id", fam.LicenseID))
	}
	return &Error{Code: CodeRefreshTokenReused, Detail: "This refresh token was already used. The installation's tokens have been revoked; activate the licence again."}
}

// familyCredential is the installation, at its generation, that a
// family's tokens belong to.
func familyCredential(fam *store.RefreshFamily) credential {
	return credential{fam.LicenseID, fam.InstallationID, fam.Generation}
}

// activeInstallation loads the credential's installation from the store,
// checks it is still admitted and notes the use (last seen).
func (s *Service) activeInstallation(ctx context.Context, cred credential) (*store.LicenseState, *store.Installation, error) {
	st, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	now := s.now()
	ins, e := s.admitted(cred, st, now)
	if e != nil {
		return nil, nil, e
	}
	// A refresh or a status read is a use like a gated request: an
	// installation that only refreshes is not idle (release_idle; issue
	// 20, L5).
	s.seen.touch(ins.ID, st.License.ID, "", now)
	return st, ins, nil
}

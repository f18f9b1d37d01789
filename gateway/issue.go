package gateway

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// issue mints an access token and starts a refresh family for an
// installation that is durably recorded.
func (s *Service) issue(ctx context.Context, lic *store.License, ins store.Installation) (*Tokens, error) {
	toks, err := s.sign(ctx, lic, ins)
	if err != nil {
		return nil, err
	}
	rt, fam := s.newFamily(lic.ID, ins)
	if err := s.cfg.Store.PutRefreshFamily(ctx, fam); err != nil {
		return nil, storeUnavailable(err)
	}
	toks.RefreshToken = rt
	return toks, nil
}

// sign mints an access token for ins (no refresh token yet). It writes
// nothing, so a failure here never costs the caller a credential.
func (s *Service) sign(ctx context.Context, lic *store.License, ins store.Installation) (*Tokens, error) {
	if err := s.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	ents, err := s.entitlements(ctx, lic, &ins)
	if err != nil {
		return nil, err
	}
	return s.signLoaded(lic, ins, ents)
}

// signLoaded is sign once the key ring is known to be loaded: no I/O, so
// it may run inside an UpdateLicense decision.
// ents are the installation's entitlements (entitlements), its ent claim.
func (s *Service) signLoaded(lic *store.License, ins store.Installation, ents []string) (*Tokens, error) {
	c := tokens.Claims{
		Audience: ins.Product, Subject: ins.ID, License: lic.ID, Domain: ins.Domain,
		Class: ins.InstallClass, Type: lic.Type, Generation: ins.Generation, Entitlements: ents,
	}
	if lic.SupportUntil != nil {
		c.SupportUntil = lic.SupportUntil.Unix()
	}
	access, err := s.issuer.Issue(c)
	if err != nil {
		return nil, unavailable(detailCannotIssue, err)
	}
	return &Tokens{
		InstallationID: ins.ID, AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int(s.issuer.TTL() / time.Second), ents: ents,
	}, nil
}

// newFamily returns the first refresh token of a new family for ins and
// the family's record.
func (s *Service) newFamily(licenseID string, ins store.Installation) (string, store.RefreshFamily) {
	rt, _ := tokens.NewRefresh("")
	return rt, s.familyOf(rt, licenseID, ins)
}

// familyOf is the record of the family whose first token is rt.
func (s *Service) familyOf(rt, licenseID string, ins store.Installation) store.RefreshFamily {
	id, _ := tokens.RefreshFamily(rt)
	now := s.now()
	return store.RefreshFamily{
		ID: id, InstallationID: ins.ID, LicenseID: licenseID, Generation: ins.Generation,
		Current: s.refreshHash(rt), IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
}

// refreshHash is a refresh token's keyed hash, the only form a store
// knows it by.
func (s *Service) refreshHash(token string) string {
	return s.cfg.Master.Hash("refresh", token)
}

func zapErr(err error) zap.Field { return zap.Error(err) }

package gateway

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
)

// issue mints an access token and a refresh token (in family, or a new
// family) for an installation that is durably recorded.
func (s *Service) issue(ctx context.Context, lic *store.License, ins store.Installation, family string) (*Tokens, error) {
	c := tokens.Claims{
		Audience: ins.Product, Subject: ins.ID, License: lic.ID, Domain: ins.Domain,
		Class: ins.InstallClass, Type: lic.Type, Generation: ins.Generation,
	}
	if lic.SupportUntil != nil {
		c.SupportUntil = lic.SupportUntil.Unix()
	}
	if err := s.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	access, err := s.issuer.Issue(c)
	if err != nil {
		return nil, unavailable(detailCannotIssue, err)
	}
	rt, rec := s.newRefresh(lic.ID, ins, family)
	if family == "" { // a rotation stores its successor atomically instead
		if err := s.cfg.Store.PutRefreshToken(ctx, rec); err != nil {
			return nil, storeUnavailable(err)
		}
	}
	return &Tokens{
		InstallationID: ins.ID, AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int(s.issuer.TTL() / time.Second), RefreshToken: rt,
	}, nil
}

func (s *Service) newRefresh(licenseID string, ins store.Installation, family string) (string, store.RefreshToken) {
	rt, fam := tokens.NewRefresh(family)
	now := s.now()
	return rt, store.RefreshToken{
		Hash: s.refreshHash(rt), Family: fam, InstallationID: ins.ID, LicenseID: licenseID,
		Generation: ins.Generation, IssuedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
}

// refreshHash is a refresh token's lookup key: its family, then a keyed
// hash of the whole token, so a store can keep a family together.
func (s *Service) refreshHash(token string) string {
	fam, _ := tokens.RefreshFamily(token)
	return fam + "." + s.cfg.Master.Hash("refresh", token)
}

func zapSource(name string) zap.Field { return zap.String("source", name) }
func zapErr(err error) zap.Field      { return zap.Error(err) }

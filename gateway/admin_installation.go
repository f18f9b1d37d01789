package gateway

import (
	"context"
	"errors"

	"github.com/licensegate/licensegate/store"
)

// Installation returns an installation and its licence.
func (s *Service) Installation(ctx context.Context, id string) (*AdminInstallation, *LicenseDetail, error) {
	licID, err := s.installationLicense(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.cfg.Store.LicenseState(ctx, licID)
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	return s.installationDetail(st, id)
}

// DeactivateInstallation frees an installation's slot on the author's
// behalf (a buyer whose server vanished) and revokes its tokens. An
// installation deactivated already is answered as it is.
func (s *Service) DeactivateInstallation(ctx context.Context, id, reason string) (*AdminInstallation, *LicenseDetail, error) {
	return s.DeactivateInstallationBy(ctx, ActorAdmin, id, reason)
}

// DeactivateInstallationBy is DeactivateInstallation audited as actor
// (ConsoleActor).
func (s *Service) DeactivateInstallationBy(ctx context.Context, actor, id, reason string) (*AdminInstallation, *LicenseDetail, error) {
	licID, err := s.installationLicense(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	find := func(st *store.LicenseState) (*store.Installation, error) {
		if ins := installationOf(st, id); ins != nil {
			return ins, nil
		}
		return nil, ErrNotFound
	}
	st, err := s.deactivate(ctx, licID, id, find, store.AuditEvent{Actor: actor, Reason: trimReason(reason)})
	if err != nil {
		return nil, nil, err
	}
	return s.installationDetail(st, id)
}

// installationLicense returns the id of the licence an installation
// belongs to.
func (s *Service) installationLicense(ctx context.Context, id string) (string, error) {
	licID, err := s.cfg.Store.InstallationLicense(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", storeUnavailable(err)
	}
	return licID, nil
}

func (s *Service) installationDetail(st *store.LicenseState, id string) (*AdminInstallation, *LicenseDetail, error) {
	in := installationOf(st, id)
	if in == nil {
		return nil, nil, ErrNotFound
	}
	ai := adminInstallation(*in)
	return &ai, s.detail(st), nil
}

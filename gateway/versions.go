package gateway

import (
	"context"
)

// Installed versions (SPEC section 13): the gate records the version an
// installation reports (Gate.AdmitVersion) with its last seen, and the
// store counts active installations per product and version in the
// writes that change them (store.CountVersions).

// InstalledVersions returns a product's active installations by the
// version they last reported at the gate (store.Counters.Versions).
func (s *Service) InstalledVersions(ctx context.Context, product string) (map[string]int64, error) {
	v, err := s.cfg.Store.Versions(ctx, product)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return v, nil
}

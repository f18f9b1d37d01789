package gateway

import (
	"context"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Idle installations (release_idle, SPEC section 4): an installation
// unused for its product's ReleaseIdle holds no slot. The activation that
// needs the slot releases it (decideActivation); the idle_sweep worker
// releases the others, so the admin views and the installation's tokens
// (403 installation_released) say so without waiting for an activation.
// The sweep is idempotent across instances: each release is decided again
// inside the licence's own store update, so only one instance writes it
// and its installation.released event.

// idleSweepInterval is how often the sweep runs at most: a product whose
// release_idle is shorter (an author watching a release in staging) is
// swept that often, but not more than once a second.
const idleSweepInterval = 10 * time.Minute

// idleSweepEvery is the sweep's period: the shortest release_idle, within
// [1s, idleSweepInterval].
func (s *Service) idleSweepEvery() time.Duration {
	d := idleSweepInterval
	for _, p := range s.cfg.Products {
		if r := p.Rules.ReleaseIdle; r > 0 && r < d {
			d = r
		}
	}
	return max(d, time.Second)
}

// idleSweepPage is how many licences one store read lists.
const idleSweepPage = 500

// releasesIdle reports whether any product sets release_idle.
func (s *Service) releasesIdle() bool {
	for _, p := range s.cfg.Products {
		if p.Rules.ReleaseIdle > 0 {
			return true
		}
	}
	return false
}

// sweepIdlePeriodically is the idle_sweep worker.
func (s *Service) sweepIdlePeriodically(ctx context.Context) error {
	return every(ctx, s.idleSweepEvery(), func(ctx context.Context) {
		if n, err := s.SweepIdle(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("releasing idle installations", zap.Int("released", n), zap.Error(err))
		}
	})
}

// SweepIdle releases every idle installation of products with
// release_idle and returns how many it released. This instance's noted
// uses are written first, so none of them is taken for idle.
func (s *Service) SweepIdle(ctx context.Context) (int, error) {
	if !s.releasesIdle() {
		return 0, nil
	}
	if err := s.FlushLastSeen(ctx); err != nil {
		return 0, err // an unwritten use could make a busy installation look idle
	}
	released, after := 0, ""
	for {
		page, err := s.cfg.Store.ListLicenses(ctx, after, idleSweepPage)
		if err != nil {
			return released, err
		}
		for _, st := range page {
			if st.License == nil {
				continue
			}
			after = st.License.ID
			p := s.product(st.License.Product)
			if p == nil || len(p.Rules.IdleInstallations(policyInstallations(st.Installations), s.now())) == 0 {
				continue
			}
			n, err := s.releaseIdleOf(ctx, p, st.License.ID)
			released += n
			if err != nil {
				return released, err
			}
		}
		if len(page) < idleSweepPage {
			return released, nil
		}
	}
}

// releaseIdleOf releases one licence's idle installations.
func (s *Service) releaseIdleOf(ctx context.Context, p *Product, licenseID string) (int, error) {
	var released []store.Installation
	_, err := s.cfg.Store.UpdateLicense(ctx, licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		now := s.now()
		released = releaseIdle(st, p.Rules.IdleInstallations(policyInstallations(st.Installations), now), now)
		if len(released) == 0 {
			return nil, nil
		}
		s.releasedEvents(ctx, st, released, "unused for "+durationText(p.Rules.ReleaseIdle))
		return st, nil
	})
	if err != nil {
		return 0, err
	}
	for _, in := range released {
		s.detachAddons(ctx, in, ActorGateway, "its base installation "+in.ID+" was released (idle)")
	}
	return len(released), nil
}

// durationText is a duration as release_idle is usually written.
func durationText(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.String()
}

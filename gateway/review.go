package gateway

import (
	"context"

	"github.com/licensegate/licensegate/store"
)

// MaxTimeline bounds a licence's audit timeline on its console page.
const MaxTimeline = 100

// LicenseReview is a licence as the console's licence page shows it: its
// facts and installations, the evidence the author decides on (the leak
// lock's sightings; the recheck's answers are in the licence's facts and
// its timeline), and its audit timeline, newest first.
type LicenseReview struct {
	*LicenseDetail
	Sightings []store.Sighting
	// Timeline is nil when the store keeps no per-licence timeline.
	Timeline []store.AuditEvent
}

// Review reads a licence for the console's licence page.
func (s *Service) Review(ctx context.Context, id string) (*LicenseReview, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if st.License == nil {
		return nil, ErrNotFound
	}
	rv := &LicenseReview{LicenseDetail: s.detail(st), Sightings: st.License.Sightings}
	// A store keeps each licence's latest events apart, written with
	// them: the timeline never scans the log.
	if la, ok := s.cfg.Store.(store.AuditByLicense); ok {
		if rv.Timeline, err = la.LicenseAudit(ctx, id, MaxTimeline); err != nil {
			return nil, storeUnavailable(err)
		}
	}
	return rv, nil
}

package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/licensegate/licensegate/store"
)

// Limits of the author's admin operations.
const (
	maxReason    = 500
	maxListLimit = 500
)

// ErrNotFound is returned by admin operations for unknown ids and keys.
var ErrNotFound = errors.New("not found")

// RotateKeys makes a new signing key current; earlier keys keep verifying
// until the tokens they signed expire. It returns the new kid and every
// kid that verifies.
func (s *Service) RotateKeys(ctx context.Context) (string, []string, error) {
	kid, err := s.ring.RotateNow(ctx)
	if err != nil {
		return "", nil, storeUnavailable(err)
	}
	s.event(ctx, nil, Event{Actor: ActorAdmin, Action: store.AuditKeysRotated, Detail: kid})
	return kid, s.ring.Keys(), nil
}

// Stats counts licences and installations by status.
type Stats struct {
	Licenses      map[string]int `json:"licenses"`
	Locked        int            `json:"locked"`
	Installations map[string]int `json:"installations"`
	SigningKeys   int            `json:"signing_keys"`
	CacheHits     uint64         `json:"cache_hits"`
	CacheMisses   uint64         `json:"cache_misses"`
	// Recheck is the due index and the mass-suspension guards.
	Recheck *RecheckStats `json:"recheck"`
}

// Stats walks every licence: an admin operation, not a hot path.
func (s *Service) Stats(ctx context.Context) (*Stats, error) {
	st := &Stats{Licenses: map[string]int{}, Installations: map[string]int{}, SigningKeys: len(s.ring.Keys())}
	st.CacheHits, st.CacheMisses = s.cache.Stats()
	rs, err := s.RecheckStatus(ctx)
	if err != nil {
		return nil, err
	}
	st.Recheck = rs
	cursor := ""
	for {
		page, err := s.cfg.Store.ListLicenses(ctx, cursor, 500)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		for _, ls := range page {
			cursor = ls.License.ID
			st.Licenses[ls.License.Status]++
			if ls.License.Locked {
				st.Locked++
			}
			for _, in := range ls.Installations {
				st.Installations[in.Status]++
			}
		}
		if len(page) < 500 {
			return st, nil
		}
	}
}

// trimReason bounds an author's free-text reason: it is kept in every
// audit entry.
func trimReason(r string) string {
	r = strings.TrimSpace(r)
	if len(r) > maxReason {
		r = r[:maxReason]
	}
	return r
}

// clamp is a page size: def when unset, never above max.
func clamp(v, def, max int) int {
	if v <= 0 {
		return def
	}
	if v > max {
		return max
	}
	return v
}

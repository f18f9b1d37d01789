package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// What a console search matched a licence by (SearchHit.By).
const (
	SearchByKey          = "key"
	SearchByLicense      = "license"
	SearchByInstallation = "installation"
	SearchByDomain       = "domain"
	SearchByEmail        = "email"
	SearchByBuyer        = "buyer"
)

// Bounds of a console search.
const (
	maxSearchQuery = 256
	// MaxSearchHits bounds the licences one search answers: each is a
	// store read, and a term lists at most store.MaxLookup.
	MaxSearchHits = 50
)

// SearchHit is a licence a search found, and what it matched by.
type SearchHit struct {
	By      string
	License AdminLicense
}

// Search finds licences by what an author has at hand (SPEC section 13):
// a licence key or purchase code (by its keyed hash at each source whose
// format it fits: the key is neither stored nor shown), a licence id, an
// installation id, an installation's domain, the buyer's e-mail address
// (by its keyed hash) or marketplace username. The query is tried as each
// of these it could be, and each try is one index lookup, never a scan:
// the cost is the same at ten licences or ten million.
func (s *Service) Search(ctx context.Context, q string) ([]SearchHit, error) {
	q = strings.TrimSpace(q)
	if q == "" || len(q) > maxSearchQuery {
		return nil, nil
	}
	var hits []SearchHit
	seen := map[string]bool{}
	add := func(by string, d *LicenseDetail) {
		if d != nil && !seen[d.License.ID] && len(hits) < MaxSearchHits {
			seen[d.License.ID] = true
			hits = append(hits, SearchHit{By: by, License: d.License})
		}
	}
	for _, try := range s.searchTries(q) {
		ids, err := try.ids(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			d, err := s.License(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue // an index a step behind a deletion
			}
			if err != nil {
				return nil, err
			}
			add(try.by, d)
		}
	}
	return hits, nil
}

// searchTry is one way of reading a query: what it matches by, and the
// licence ids it finds.
type searchTry struct {
	by  string
	ids func(context.Context) ([]string, error)
}

// searchTries lists the readings of q, most specific first.
func (s *Service) searchTries(q string) []searchTry {
	var tries []searchTry
	switch {
	case strings.HasPrefix(q, "lic_"):
		tries = append(tries, searchTry{SearchByLicense, func(context.Context) ([]string, error) { return []string{q}, nil }})
	case strings.HasPrefix(q, "ins_"):
		tries = append(tries, searchTry{SearchByInstallation, s.installationSearch(q)})
	}
	tries = append(tries, searchTry{SearchByKey, s.keySearch(q)})
	if strings.Contains(q, "@") {
		return append(tries, searchTry{SearchByEmail, s.termSearch(store.EmailTerm(s.EmailHash(q)))})
	}
	if d, err := policy.NormalizeDomain(q); err == nil {
		tries = append(tries, searchTry{SearchByDomain, s.termSearch(store.DomainTerm(d))})
	}
	for _, src := range s.sourceNames() {
		tries = append(tries, searchTry{SearchByBuyer, s.termSearch(store.BuyerTerm(src, q))})
	}
	return tries
}

// termSearch finds the licences a lookup term indexes.
func (s *Service) termSearch(term string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		ids, err := s.cfg.Store.Lookup(ctx, term)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		return ids, nil
	}
}

// installationSearch finds an installation's licence.
func (s *Service) installationSearch(id string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		lic, err := s.installationLicense(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return []string{lic}, err
	}
}

// keySearch finds the licence of a key at each source whose format the
// query fits (candidates): a query no source could have sold finds none.
func (s *Service) keySearch(q string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		cands, err := s.candidates(q, "")
		if err != nil {
			return nil, nil
		}
		ids := make([]string, 0, len(cands))
		for _, c := range cands {
			ids = append(ids, c.licenseID)
		}
		return ids, nil
	}
}

// sourceNames lists the configured sources, sorted: a buyer's username is
// indexed per source.
func (s *Service) sourceNames() []string {
	names := make([]string, 0, len(s.cfg.Sources))
	for name := range s.cfg.Sources {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

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

// SearchByID finds a licence by its id or one of its installations' ids.
const SearchByID = "id"

// SearchHit is a licence a search found, and what it matched by.
type SearchHit struct {
	By      string
	License AdminLicense
}

// ErrSearchKind is Search's answer to a kind it does not know.
var ErrSearchKind = errors.New("unknown search kind")

// Search finds licences by what an author has at hand (SPEC section 13),
// read as the kind by says: a licence key or purchase code (SearchByKey:
// by its keyed hash at each source whose format it fits, so the key is
// neither stored nor shown, nor sent to the store in the clear), a licence
// id (SearchByLicense), an installation id (SearchByInstallation), either
// of those (SearchByID), an installation's domain, the buyer's e-mail
// address (by its keyed hash) or marketplace username. The author says
// which: a query tried as every kind would send a purchase code to the
// store as a username. Each kind is one index lookup (a username one per
// source), never a scan: the cost is the same at ten licences or ten
// million.
func (s *Service) Search(ctx context.Context, by, q string) ([]SearchHit, error) {
	tries, err := s.searchTries(by, strings.TrimSpace(q))
	if err != nil {
		return nil, err
	}
	var hits []SearchHit
	seen := map[string]bool{}
	for _, try := range tries {
		ids, err := try.ids(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if seen[id] || len(hits) == MaxSearchHits {
				continue
			}
			d, err := s.License(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue // an index a step behind a deletion
			}
			if err != nil {
				return nil, err
			}
			seen[id] = true
			hits = append(hits, SearchHit{By: try.by, License: d.License})
		}
	}
	return hits, nil
}

// searchTry is one lookup of a query: what it matches by, and the licence
// ids it finds.
type searchTry struct {
	by  string
	ids func(context.Context) ([]string, error)
}

// searchTries lists the lookups of q read as by; none for an empty or
// overlong query.
func (s *Service) searchTries(by, q string) ([]searchTry, error) {
	if q == "" || len(q) > maxSearchQuery {
		return nil, nil
	}
	switch by {
	case SearchByKey:
		return []searchTry{{SearchByKey, s.keySearch(q)}}, nil
	case SearchByLicense:
		return []searchTry{{SearchByLicense, func(context.Context) ([]string, error) { return []string{q}, nil }}}, nil
	case SearchByInstallation:
		return []searchTry{{SearchByInstallation, s.installationSearch(q)}}, nil
	case SearchByID:
		if strings.HasPrefix(q, "ins_") {
			return s.searchTries(SearchByInstallation, q)
		}
		return s.searchTries(SearchByLicense, q)
	case SearchByEmail:
		return []searchTry{{SearchByEmail, s.termSearch(store.EmailTerm(s.EmailHash(q)))}}, nil
	case SearchByDomain:
		d, err := policy.NormalizeDomain(q)
		if err != nil {
			return nil, nil // no domain: nothing has it
		}
		return []searchTry{{SearchByDomain, s.termSearch(store.DomainTerm(d))}}, nil
	case SearchByBuyer:
		var tries []searchTry
		for _, src := range s.sourceNames() {
			tries = append(tries, searchTry{SearchByBuyer, s.termSearch(store.BuyerTerm(src, q))})
		}
		return tries, nil
	}
	return nil, ErrSearchKind
}

// SearchKinds lists the kinds Search reads a query as, in the order the
// console offers them.
var SearchKinds = []string{SearchByDomain, SearchByKey, SearchByEmail, SearchByBuyer, SearchByID}

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

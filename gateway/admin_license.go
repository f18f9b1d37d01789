package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/licensegate/licensegate/store"
)

// License returns a stored licence by id.
func (s *Service) License(ctx context.Context, id string) (*LicenseDetail, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if st.License == nil {
		return nil, ErrNotFound
	}
	return s.detail(st), nil
}

// LookupKey finds the stored licence of a licence key or purchase code,
// by the keyed hash at each source whose format it fits. The key is
// neither stored nor echoed.
func (s *Service) LookupKey(ctx context.Context, key string) (*LicenseDetail, error) {
	cands, err := s.candidates(key, "")
	if err != nil {
		return nil, ErrNotFound // not a key any source could have sold
	}
	for _, c := range cands {
		d, err := s.License(ctx, c.licenseID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return d, err
	}
	return nil, ErrNotFound
}

// LicenseFilter selects licences for the admin list.
type LicenseFilter struct {
	Query   string // substring of the id, licensed_to or an installation's domain
	Status  string
	Product string
	Cursor  string
	Limit   int
}

// ListLicenses pages through licences matching f, in id order; the cursor
// returned is empty at the end.
func (s *Service) ListLicenses(ctx context.Context, f LicenseFilter) ([]AdminLicense, string, error) {
	limit := clamp(f.Limit, 50, maxListLimit)
	out := []AdminLicense{}
	cursor := f.Cursor
	for len(out) < limit {
		page, err := s.cfg.Store.ListLicenses(ctx, cursor, limit)
		if err != nil {
			return nil, "", storeUnavailable(err)
		}
		for _, st := range page {
			cursor = st.License.ID
			if matches(st, f) {
				out = append(out, s.detail(st).License)
				if len(out) == limit {
					return out, cursor, nil
				}
			}
		}
		if len(page) < limit {
			return out, "", nil
		}
	}
	return out, cursor, nil
}

func matches(st *store.LicenseState, f LicenseFilter) bool {
	lic := st.License
	if (f.Status != "" && lic.Status != f.Status) || (f.Product != "" && lic.Product != f.Product) {
		return false
	}
	if f.Query == "" {
		return true
	}
	q := strings.ToLower(f.Query)
	if strings.Contains(lic.ID, q) || strings.Contains(strings.ToLower(lic.LicensedTo), q) {
		return true
	}
	for _, in := range st.Installations {
		if strings.Contains(in.Domain, q) || in.ID == f.Query {
			return true
		}
	}
	return false
}

// License actions an author can take.
const (
	ActionSuspend   = "suspend"
	ActionReinstate = "reinstate"
	ActionLock      = "lock"
	ActionUnlock    = "unlock"
)

// ErrUnknownAction is returned for an action other than the four above.
var ErrUnknownAction = errors.New("unknown licence action")

// ChangeLicense suspends, reinstates, locks or unlocks a licence. The
// change reaches every gate through the store's change feed.
func (s *Service) ChangeLicense(ctx context.Context, id, action, reason string) (*LicenseDetail, error) {
	return s.ChangeLicenseBy(ctx, ActorAdmin, id, action, reason, "")
}

// ErrLicenseChanged means a change was asked of a licence in a status it
// is no longer in (ChangeLicenseBy's expect): someone else decided first.
var ErrLicenseChanged = errors.New("the licence's status changed")

// ChangeLicenseBy is ChangeLicense audited as actor (ConsoleActor): the
// console's one path to the admin API's operation. With expect set, the
// change is made only while the licence's status is expect, in the same
// write; otherwise nothing changes and the answer is ErrLicenseChanged
// (with the licence as it is): a page opened before another author's
// decision must not undo it (a stale "dismiss flag" re-activating a
// licence just suspended for fraud).
func (s *Service) ChangeLicenseBy(ctx context.Context, actor, id, action, reason, expect string) (*LicenseDetail, error) {
	audit, ok := map[string]string{
		ActionSuspend: store.AuditLicenseSuspended, ActionReinstate: store.AuditLicenseReinstated,
		ActionLock: store.AuditLicenseLocked, ActionUnlock: store.AuditLicenseUnlocked,
	}[action]
	if !ok {
		return nil, ErrUnknownAction
	}
	reason = trimReason(reason)
	now := s.now()
	var missing, changed bool
	st, err := s.cfg.Store.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
		missing = st.License == nil
		if missing {
			return nil, nil
		}
		if changed = expect != "" && st.License.Status != expect; changed {
			return nil, nil
		}
		applyAction(st.License, action)
		st.License.UpdatedAt = now
		s.event(ctx, st, Event{Actor: actor, Action: audit, LicenseID: id, Reason: reason})
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if missing {
		return nil, ErrNotFound
	}
	if changed {
		return s.detail(st), ErrLicenseChanged
	}
	return s.detail(st), nil
}

func applyAction(lic *store.License, action string) {
	switch action {
	case ActionSuspend:
		lic.Status, lic.StatusBy = store.LicenseSuspended, ActorAdmin
	case ActionReinstate:
		lic.Status, lic.StatusBy = store.LicenseActive, ""
		// The author decided: the answers before count no more. The next
		// definitive answer flags the licence again (manual mode), and
		// auto mode counts its confirm answers afresh.
		lic.Recheck.Definitive, lic.Recheck.FirstDefinitiveAt = 0, time.Time{}
	case ActionLock:
		lic.Locked = true
	case ActionUnlock:
		// The sightings that locked it are forgotten too: kept, the next
		// attempt would lock the licence again at once.
		lic.Locked, lic.Sightings = false, nil
	}
}

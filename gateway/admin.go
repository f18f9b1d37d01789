package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// Admin actors and limits.
const (
	ActorAdmin     = "admin"
	ActorInstaller = "installer"
	ActorGateway   = "gateway"

	maxReason     = 500
	maxListLimit  = 500
	maxAuditLimit = 1000
)

// ErrNotFound is returned by admin operations for unknown ids and keys.
var ErrNotFound = errors.New("not found")

// ErrNoLedger means the store cannot list licences or keep an audit log.
var ErrNoLedger = errors.New("this store keeps no audit log or licence index")

// AdminLicense is the author's view of a licence (SPEC section 8): never
// the purchase code.
type AdminLicense struct {
	ID               string     `json:"id"`
	Status           string     `json:"status"`
	Locked           bool       `json:"locked"`
	Product          string     `json:"product"`
	Source           string     `json:"source"`
	Type             string     `json:"type"`
	LicensedTo       string     `json:"licensed_to"`
	ExpiresAt        *time.Time `json:"expires_at"`
	SupportUntil     *time.Time `json:"support_until"`
	Retired          bool       `json:"product_retired"`
	ActivationsLimit int        `json:"activations_limit"`
	ActivationsUsed  int        `json:"activations_used"`
	NextCheckAt      *time.Time `json:"next_check_at"`
	VerifiedAt       time.Time  `json:"verified_at"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// AdminInstallation is the author's view of an installation.
type AdminInstallation struct {
	ID            string     `json:"id"`
	LicenseID     string     `json:"license_id"`
	Domain        string     `json:"domain"`
	InstallClass  string     `json:"install_class"`
	Status        string     `json:"status"`
	Label         string     `json:"label,omitempty"`
	ClientIP      string     `json:"client_ip,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"`
}

// LicenseDetail is a licence with its installations.
type LicenseDetail struct {
	License       AdminLicense        `json:"license"`
	Installations []AdminInstallation `json:"installations"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Service) detail(st *store.LicenseState) *LicenseDetail {
	lic := st.License
	d := &LicenseDetail{License: AdminLicense{
		ID: lic.ID, Status: lic.Status, Locked: lic.Locked, Product: lic.Product, Source: lic.Source,
		Type: lic.Type, LicensedTo: lic.LicensedTo, ExpiresAt: lic.ExpiresAt, SupportUntil: lic.SupportUntil,
		Retired: lic.Retired, NextCheckAt: timePtr(lic.NextCheckAt), VerifiedAt: lic.VerifiedAt,
		CreatedAt: lic.CreatedAt, UpdatedAt: lic.UpdatedAt,
	}, Installations: []AdminInstallation{}}
	if v := s.view(st, nil); v.ActivationsLimit > 0 {
		d.License.ActivationsLimit, d.License.ActivationsUsed = v.ActivationsLimit, v.ActivationsUsed
	}
	for _, in := range st.Installations {
		d.Installations = append(d.Installations, adminInstallation(in))
	}
	return d
}

func adminInstallation(in store.Installation) AdminInstallation {
	return AdminInstallation{
		ID: in.ID, LicenseID: in.LicenseID, Domain: in.Domain, InstallClass: in.InstallClass,
		Status: in.Status, Label: in.Label, ClientIP: in.ClientIP, CreatedAt: in.CreatedAt,
		LastSeenAt: timePtr(in.LastSeenAt), DeactivatedAt: timePtr(in.DeactivatedAt),
	}
}

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
// by the keyed hash of each source it fits. The key is neither stored nor
// echoed.
func (s *Service) LookupKey(ctx context.Context, key string) (*LicenseDetail, error) {
	clean, err := upstreams.CleanKey(key)
	if err != nil {
		return nil, ErrNotFound
	}
	for _, name := range s.sourceNames() {
		canon, err := s.cfg.Sources[name].CanonicalKey(clean)
		if err != nil {
			continue
		}
		d, err := s.License(ctx, s.licenseID(name, canon))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return d, err
	}
	return nil, ErrNotFound
}

func (s *Service) sourceNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range s.cfg.ProductOrder {
		for _, n := range s.cfg.Products[p].Sources {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
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
	audit, ok := map[string]string{
		ActionSuspend: store.AuditLicenseSuspended, ActionReinstate: store.AuditLicenseReinstated,
		ActionLock: store.AuditLicenseLocked, ActionUnlock: store.AuditLicenseUnlocked,
	}[action]
	if !ok {
		return nil, ErrUnknownAction
	}
	reason = trimReason(reason)
	now := s.now()
	var missing bool
	st, err := s.cfg.Store.UpdateLicense(ctx, id, func(st *store.LicenseState) (*store.LicenseState, error) {
		missing = st.License == nil
		if missing {
			return nil, nil
		}
		applyAction(st.License, action)
		st.License.UpdatedAt = now
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if missing {
		return nil, ErrNotFound
	}
	s.audit(ctx, store.AuditEvent{Actor: ActorAdmin, Action: audit, LicenseID: id, Reason: reason})
	return s.detail(st), nil
}

func applyAction(lic *store.License, action string) {
	switch action {
	case ActionSuspend:
		lic.Status, lic.StatusBy = store.LicenseSuspended, ActorAdmin
	case ActionReinstate:
		lic.Status, lic.StatusBy = store.LicenseActive, ""
	case ActionLock:
		lic.Locked = true
	case ActionUnlock:
		lic.Locked = false
	}
}

func trimReason(r string) string {
	r = strings.TrimSpace(r)
	if len(r) > maxReason {
		r = r[:maxReason]
	}
	return r
}

// Installation returns an installation and its licence.
func (s *Service) Installation(ctx context.Context, id string) (*AdminInstallation, *LicenseDetail, error) {
	licID, err := s.cfg.Store.InstallationLicense(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	st, err := s.cfg.Store.LicenseState(ctx, licID)
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	in := installationOf(st, id)
	if in == nil {
		return nil, nil, ErrNotFound
	}
	ai := adminInstallation(*in)
	return &ai, s.detail(st), nil
}

// DeactivateInstallation frees an installation's slot on the author's
// behalf (a buyer whose server vanished) and revokes its tokens.
func (s *Service) DeactivateInstallation(ctx context.Context, id, reason string) (*AdminInstallation, *LicenseDetail, error) {
	licID, err := s.cfg.Store.InstallationLicense(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	now := s.now()
	var missing, changed bool
	st, err := s.cfg.Store.UpdateLicense(ctx, licID, func(st *store.LicenseState) (*store.LicenseState, error) {
		in := installationOf(st, id)
		missing, changed = in == nil, false
		if missing || in.Status == store.InstallationDeactivated {
			return nil, nil
		}
		in.Status = store.InstallationDeactivated
		in.Generation++
		in.DeactivatedAt, in.UpdatedAt = now, now
		changed = true
		return st, nil
	})
	if err != nil {
		return nil, nil, storeUnavailable(err)
	}
	if missing {
		return nil, nil, ErrNotFound
	}
	in := installationOf(st, id)
	if changed {
		s.audit(ctx, store.AuditEvent{Actor: ActorAdmin, Action: store.AuditInstallationDeactivated,
			LicenseID: licID, InstallationID: id, Reason: trimReason(reason), Detail: in.Domain})
	}
	ai := adminInstallation(*in)
	return &ai, s.detail(st), nil
}

// RotateKeys makes a new signing key current; earlier keys keep verifying
// until the tokens they signed expire. It returns the new kid and every
// kid that verifies.
func (s *Service) RotateKeys(ctx context.Context) (string, []string, error) {
	kid, err := s.ring.RotateNow(ctx)
	if err != nil {
		return "", nil, storeUnavailable(err)
	}
	s.audit(ctx, store.AuditEvent{Actor: ActorAdmin, Action: store.AuditKeysRotated, Detail: kid})
	return kid, s.ring.Keys(), nil
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
	ledger, ok := s.cfg.Store.(store.Ledger)
	if !ok {
		return nil, "", ErrNoLedger
	}
	limit := clamp(f.Limit, 50, maxListLimit)
	out := []AdminLicense{}
	cursor := f.Cursor
	for len(out) < limit {
		page, err := ledger.ListLicenses(ctx, cursor, limit)
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

func clamp(v, def, max int) int {
	if v <= 0 {
		return def
	}
	if v > max {
		return max
	}
	return v
}

// Audit pages through the audit log.
func (s *Service) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, string, error) {
	ledger, ok := s.cfg.Store.(store.Ledger)
	if !ok {
		return nil, "", ErrNoLedger
	}
	q.Limit = clamp(q.Limit, 100, maxAuditLimit)
	evs, err := ledger.Audit(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", Validation("cursor", "is not a cursor this gateway issued")
	}
	if err != nil {
		return nil, "", storeUnavailable(err)
	}
	if evs == nil {
		evs = []store.AuditEvent{}
	}
	next := ""
	if len(evs) == q.Limit {
		next = evs[len(evs)-1].ID
	}
	return evs, next, nil
}

// Stats counts licences and installations by status.
type Stats struct {
	Licenses      map[string]int `json:"licenses"`
	Locked        int            `json:"locked"`
	Installations map[string]int `json:"installations"`
	SigningKeys   int            `json:"signing_keys"`
	CacheHits     uint64         `json:"cache_hits"`
	CacheMisses   uint64         `json:"cache_misses"`
}

// Stats walks every licence: an admin operation, not a hot path.
func (s *Service) Stats(ctx context.Context) (*Stats, error) {
	ledger, ok := s.cfg.Store.(store.Ledger)
	if !ok {
		return nil, ErrNoLedger
	}
	st := &Stats{Licenses: map[string]int{}, Installations: map[string]int{}, SigningKeys: len(s.ring.Keys())}
	st.CacheHits, st.CacheMisses = s.cache.Stats()
	cursor := ""
	for {
		page, err := ledger.ListLicenses(ctx, cursor, 500)
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

// audit appends an event after the change it records was committed. A
// failure is logged: the change itself stands.
func (s *Service) audit(ctx context.Context, ev store.AuditEvent) {
	ledger, ok := s.cfg.Store.(store.Ledger)
	if !ok {
		return
	}
	ev.At = s.now()
	if err := ledger.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("appending audit event", zap.String("action", ev.Action), zap.Error(err))
	}
}

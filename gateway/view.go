package gateway

import (
	"time"

	"github.com/licensegate/licensegate/store"
)

// Activation is the answer to a successful activation.
type Activation struct {
	Created bool `json:"-"`
	Tokens
	License LicenseView `json:"license"`
}

// Tokens is a freshly issued token pair.
type Tokens struct {
	InstallationID string `json:"installation_id"`
	AccessToken    string `json:"access_token"`
	TokenType      string `json:"token_type"`
	ExpiresIn      int    `json:"expires_in"`
	// RefreshToken is empty (and absent) only in an add-on's attach
	// answer, which keeps the installation's refresh token.
	RefreshToken string `json:"refresh_token,omitempty"`

	// ents is the access token's ent claim, for the answer's licence
	// block.
	ents []string
}

// LicenseView is the licence block installers see (SPEC section 4).
type LicenseView struct {
	ID               string     `json:"id"`
	Product          string     `json:"product"`
	Source           string     `json:"source"`
	Type             string     `json:"type"`
	LicensedTo       string     `json:"licensed_to"`
	Status           string     `json:"status"`
	ExpiresAt        *time.Time `json:"expires_at"`
	SupportUntil     *time.Time `json:"support_until"`
	SupportActive    bool       `json:"support_active"`
	ProductRetired   bool       `json:"product_retired"`
	ActivationsUsed  int        `json:"activations_used"`
	ActivationsLimit int        `json:"activations_limit"`
	Domain           string     `json:"domain"`
	InstallClass     string     `json:"install_class"`
	// Entitlements are the installation's (SPEC section 14): on the
	// answers that read its add-ons (activate, addons, move, status).
	Entitlements []string `json:"entitlements,omitempty"`
	// Addons are the add-ons attached to the installation (status).
	Addons []AddonView `json:"addons,omitempty"`
}

func (s *Service) view(st *store.LicenseState, ins *store.Installation) LicenseView {
	lic := st.License
	v := LicenseView{
		ID: lic.ID, Product: lic.Product, Source: lic.Source, Type: lic.Type,
		LicensedTo: lic.LicensedTo, Status: lic.Status, ExpiresAt: lic.ExpiresAt,
		SupportUntil: lic.SupportUntil, SupportActive: supportActive(lic, s.now()),
		ProductRetired: lic.Retired,
	}
	if p := s.product(lic.Product); p != nil {
		pl := s.policyLicense(lic)
		v.ActivationsLimit = p.Rules.Limit(pl)
		v.ActivationsUsed = len(p.Rules.SlotDomains(policyInstallations(st.Installations), ""))
	}
	if ins != nil {
		v.Domain, v.InstallClass = ins.Domain, ins.InstallClass
	}
	return v
}

// supportActive: no support date means the source does not sell support
// periods, which we read as supported.
func supportActive(lic *store.License, now time.Time) bool {
	return lic.SupportUntil == nil || now.Before(*lic.SupportUntil)
}

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
	// The background recheck's last answer and streaks (SPEC section 7).
	LastCheckedAt         *time.Time `json:"last_checked_at"`
	LastOutcome           string     `json:"last_outcome,omitempty"`
	LastReason            string     `json:"last_reason,omitempty"`
	ConsecutiveDefinitive int        `json:"consecutive_definitive"`
	FirstDefinitiveAt     *time.Time `json:"first_definitive_at,omitempty"`
	UnknownStreak         int        `json:"unknown_streak"`
	VerifiedAt            time.Time  `json:"verified_at"`
	CreatedAt             time.Time  `json:"created_at"`
	UpdatedAt             time.Time  `json:"updated_at"`
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
	// Addons are the add-ons attached to the installation; BaseInstallation
	// and BaseLicense, on an add-on licence's installation, what it is
	// attached to (SPEC section 14).
	Addons           []store.AddonRef `json:"addons,omitempty"`
	BaseInstallation string           `json:"base_installation,omitempty"`
	BaseLicense      string           `json:"base_license,omitempty"`
	// MarkedStaging: its buyer marked it a staging copy (the portal).
	MarkedStaging bool `json:"marked_staging,omitempty"`
	// Version is the product version it last reported at the gate
	// (X-Product-Version).
	Version string `json:"version,omitempty"`
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
		LastCheckedAt: timePtr(lic.Recheck.LastCheckAt), LastOutcome: lic.Recheck.LastOutcome, LastReason: lic.Recheck.LastReason,
		ConsecutiveDefinitive: lic.Recheck.Definitive, FirstDefinitiveAt: timePtr(lic.Recheck.FirstDefinitiveAt),
		UnknownStreak: lic.Recheck.Unknown,
		CreatedAt:     lic.CreatedAt, UpdatedAt: lic.UpdatedAt,
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
		Addons: in.Addons, BaseInstallation: in.Base, BaseLicense: in.BaseLicense, MarkedStaging: in.MarkedStaging, Version: in.Version,
	}
}

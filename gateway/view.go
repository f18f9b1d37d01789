package gateway

import (
	"time"

	"github.com/licensegate/licensegate/store"
)

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
		pl := policyLicense(lic)
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

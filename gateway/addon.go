package gateway

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// Add-ons (SPEC section 14): a theme pack or module sold for an item,
// with its own purchase code. Its licence is verified like an activation
// and attached to an installation of the base product: one slot of the
// add-on's licence, held by an installation of it (Installation.Base)
// while the base installation is active. The base installation lists it
// (Installation.Addons) for its tokens' ent claim and the gate. The two
// are different licences, so two writes: the add-on's first (the slot,
// the truth), then the base's (the list); a failure between them leaves a
// slot the buyer's retry finds attached and links.

// AddonRequest attaches an add-on licence to the installation a token
// belongs to.
type AddonRequest struct {
	// Token is the base installation's access token (or its current
	// refresh token, as for deactivate and move).
	Token string
	Key   string
	// Product optionally names the add-on product, as activate's does.
	Product  string
	ClientIP string
	Budget   *FailureBudget
}

// AddonAttachment is the answer to an attach: a fresh token pair for the
// base installation, its licence block, and the add-on.
type AddonAttachment struct {
	// Created is false when the add-on was attached to the installation
	// already (a retry): no slot was used.
	Created bool `json:"-"`
	Tokens
	License LicenseView `json:"license"`
	Addon   AddonView   `json:"addon"`
}

// AddonView is an attached add-on as installers, the admin API and the
// portal see it.
type AddonView struct {
	LicenseID      string   `json:"license_id"`
	Product        string   `json:"product"`
	InstallationID string   `json:"installation_id"`
	Type           string   `json:"type"`
	Status         string   `json:"status"`
	Attached       bool     `json:"attached"`
	Entitlements   []string `json:"entitlements"`
}

// AttachAddon verifies an add-on key (the source asked at most once, as an
// activation), attaches its licence to the token's installation and
// returns a fresh token pair whose ent claim includes the add-on's
// entitlements.
func (s *Service) AttachAddon(ctx context.Context, req AddonRequest) (_ *AddonAttachment, err error) {
	ctx, done := s.observe(ctx, EndpointAddons)
	defer func() { done(err) }()
	if err := s.validateAddon(req); err != nil {
		return nil, err
	}
	cred, err := s.authenticate(ctx, req.Token)
	if err != nil {
		return nil, err
	}
	base, err := s.cfg.Store.LicenseState(ctx, cred.licenseID)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	now := s.now()
	baseIns, err := s.admitted(cred, base, now)
	if err != nil {
		return nil, err
	}
	if contested(baseIns, now) {
		return nil, contestedError(baseIns, now)
	}
	f, p, err := s.findAddon(ctx, req, base.License, baseIns)
	if err != nil {
		return nil, err
	}
	if err := s.refuseSecondAddon(ctx, baseIns, p.Name, f.cand.licenseID); err != nil {
		return nil, err
	}
	if err := s.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	out, st, err := s.attach(ctx, f, p, baseIns, req)
	if err != nil {
		return nil, err
	}
	return s.linkAddon(ctx, cred, st, out)
}

func (s *Service) validateAddon(req AddonRequest) error {
	fields := map[string][]string{}
	if req.Key == "" {
		fields["license_key"] = []string{"is required"}
	}
	if req.Product != "" {
		if p := s.product(req.Product); p == nil || len(p.AddonOf) == 0 {
			fields["product"] = []string{"is not an add-on product of this gateway"}
		}
	}
	if len(fields) > 0 {
		return Invalid(fields)
	}
	return nil
}

// findAddon finds or verifies the add-on key, as an activation on the
// base installation's domain would, and checks it is an add-on of the
// base's product.
func (s *Service) findAddon(ctx context.Context, req AddonRequest, baseLic *store.License, baseIns *store.Installation) (*found, *Product, error) {
	cands, err := s.candidates(req.Key, req.Product)
	if err != nil {
		return nil, nil, err
	}
	act := ActivateRequest{Key: req.Key, Domain: baseIns.Domain, Product: req.Product, ClientIP: req.ClientIP, Budget: req.Budget}
	f, err := s.resolveLicense(ctx, cands, act, baseIns.Domain)
	if err != nil {
		return nil, nil, err
	}
	if v := f.verdict; v != nil && v.Outcome == upstreams.Invalid && f.state.License == nil {
		return nil, nil, refusalForVerdict(v.Reason)
	}
	p, refused := s.productFor(f, req.Product)
	if refused != nil {
		return nil, nil, refused
	}
	if !slices.Contains(p.AddonOf, baseLic.Product) {
		return nil, nil, &Error{Code: CodeWrongProduct, Detail: "This licence is not an add-on of " + baseLic.Product + "."}
	}
	return f, p, nil
}

// refuseSecondAddon refuses a second licence of one add-on product on one
// installation while the first still holds: it would take a slot of the
// second licence for nothing.
func (s *Service) refuseSecondAddon(ctx context.Context, baseIns *store.Installation, product, licenseID string) error {
	now := s.now()
	for _, ref := range baseIns.Addons {
		if ref.Product != product || ref.LicenseID == licenseID {
			continue
		}
		st, err := s.cfg.Store.LicenseState(ctx, ref.LicenseID)
		if err != nil {
			return storeUnavailable(err)
		}
		if s.addonHolds(st, ref, baseIns.ID, now) {
			return &Error{Code: CodeAddonAttached, Detail: "Another licence of " + product + " is attached to this installation already."}
		}
	}
	return nil
}

// attachment is what attaching decided on the add-on's licence.
type attachment struct {
	refusal *Error
	ins     store.Installation // the add-on's installation
	created bool
	// detached are the add-on's installations whose base no longer holds,
	// detached by this write.
	detached []store.Installation
	locked   string
}

// attach writes the add-on's side: its installation attached to baseIns,
// after detaching any of its installations whose base no longer holds
// (a detach lost to a crash is repaired here, before it costs the buyer
// a slot).
func (s *Service) attach(ctx context.Context, f *found, p *Product, baseIns *store.Installation, req AddonRequest) (attachment, *store.LicenseState, error) {
	dead, err := s.deadBases(ctx, f.state, baseIns.ID)
	if err != nil {
		return attachment{}, nil, err
	}
	now := s.now()
	var out attachment
	st, err := s.cfg.Store.UpdateLicense(ctx, f.cand.licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		before, prev := licenseFacts(st.License), copyLicense(st.License)
		st.License = s.mergeLicense(st.License, f, p.Name, now)
		var write bool
		out, write = decideAttach(p, st, baseIns, req.ClientIP, answered(f), dead, now)
		if !write && licenseFacts(st.License) == before {
			return nil, nil
		}
		pruneInstallations(st, now)
		for _, ev := range licenseEvents(prev, st.License, ActorGateway) {
			s.event(ctx, st, ev)
		}
		s.attachEvents(ctx, st, out, baseIns, req.ClientIP)
		return st, nil
	})
	if err != nil {
		return out, nil, storeUnavailable(err)
	}
	if out.refusal != nil {
		return out, nil, out.refusal
	}
	return out, st, nil
}

// deadBases lists the add-on licence's active installations (in st, as
// read) attached to a base installation other than keep that no longer
// holds: gone, deactivated, released, cloned, or of a licence gone.
func (s *Service) deadBases(ctx context.Context, st *store.LicenseState, keep string) (map[string]bool, error) {
	dead := map[string]bool{}
	if st == nil || st.License == nil {
		return dead, nil
	}
	for _, in := range st.Installations {
		if !in.Active() || in.Base == "" || in.Base == keep {
			continue
		}
		bst, err := s.cfg.Store.LicenseState(ctx, in.BaseLicense)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		if !baseHolds(bst, in, s.now()) {
			dead[in.ID] = true
		}
	}
	return dead, nil
}

// linkGrace is how long an add-on's attachment may wait for its base
// installation to list it (the attach's second write) before a later
// attach of the add-on elsewhere takes it for a failed one.
const linkGrace = time.Minute

// baseHolds reports whether the base installation an add-on's
// installation in is attached to (in bst, its licence's state) still
// holds it: active, and listing it once the attach has had time to.
func baseHolds(bst *store.LicenseState, in store.Installation, now time.Time) bool {
	b := installationOf(bst, in.Base)
	if b == nil || !b.Active() {
		return false
	}
	for _, ref := range b.Addons {
		if ref.InstallationID == in.ID {
			return true
		}
	}
	return now.Sub(in.CreatedAt) < linkGrace
}

// decideAttach applies an attach to st (the add-on licence's state, a
// copy) and reports whether st must be written.
func decideAttach(p *Product, st *store.LicenseState, baseIns *store.Installation, clientIP string, answered bool, dead map[string]bool, now time.Time) (attachment, bool) {
	lic := st.License
	pl := policyLicense(lic)
	if !answered {
		pl.ExpiryGrace = p.recheck.ExpiryGrace
	}
	if ref := policy.Standing(pl, now); ref != nil {
		return attachment{refusal: fromRefusal(ref)}, false
	}
	var out attachment
	write := false
	for i := range st.Installations {
		if in := &st.Installations[i]; in.Active() && dead[in.ID] {
			detachInstallation(in, now)
			out.detached, write = append(out.detached, *in), true
		}
	}
	for i := range st.Installations {
		if in := &st.Installations[i]; in.Active() && in.Base == baseIns.ID {
			if in.Domain != baseIns.Domain { // its base moved while the add-on's record was not followed
				in.Domain, in.UpdatedAt = baseIns.Domain, now
				write = true
			}
			out.ins = *in // attached already: a retry
			return out, write
		}
	}
	domain := baseIns.Domain
	installs := policyInstallations(st.Installations)
	d, _, ref := p.Rules.DecideActivationReleasing(pl, installs, domain, "", now)
	if !lic.Locked {
		sighted, reason := observeLeak(p, lic, st, installs, domain, clientIP, false, now)
		write = write || sighted
		if reason != "" {
			lic.Locked, lic.UpdatedAt = true, now
			return attachment{locked: reason, refusal: fromRefusal(policy.LockedRefusal()), detached: out.detached}, true
		}
	}
	if ref != nil {
		out.refusal = fromRefusal(ref)
		return out, write
	}
	if d.Reuse != "" {
		out.refusal = &Error{Code: CodeAddonAttached, Detail: "This add-on licence is attached to another installation on this domain."}
		return out, write
	}
	out.created = true
	out.ins = store.Installation{
		ID: newInstallationID(), LicenseID: lic.ID, Product: p.Name, Domain: domain,
		InstallClass: string(d.Class), Status: store.InstallationActive, ClientIP: clientIP, HomeIP: clientIP,
		Base: baseIns.ID, BaseLicense: baseIns.LicenseID, Generation: 1, CreatedAt: now, UpdatedAt: now,
	}
	st.Installations = append(st.Installations, out.ins)
	return out, true
}

// detachInstallation ends an add-on installation's attachment, which
// frees its slot.
func detachInstallation(in *store.Installation, now time.Time) {
	in.Status = store.InstallationDeactivated
	in.Generation++
	in.DeactivatedAt, in.UpdatedAt = now, now
}

// attachEvents records what an attach changed, with the change.
func (s *Service) attachEvents(ctx context.Context, st *store.LicenseState, out attachment, baseIns *store.Installation, clientIP string) {
	for _, in := range out.detached {
		s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditAddonDetached, LicenseID: in.LicenseID,
			InstallationID: in.ID, Detail: in.Domain, Reason: "its base installation " + in.Base + " is no longer active"})
	}
	switch {
	case out.locked != "":
		s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditLicenseLocked,
			LicenseID: st.License.ID, Reason: out.locked, ClientIP: clientIP})
	case out.created:
		s.event(ctx, st, Event{Actor: ActorInstaller, Action: store.AuditAddonAttached, LicenseID: st.License.ID,
			InstallationID: out.ins.ID, Detail: out.ins.Domain, Reason: "attached to installation " + baseIns.ID, ClientIP: clientIP})
	}
}

// linkAddon writes the base's side, the add-on in the installation's
// list, and signs a fresh access token whose ent claim lists it. No new
// refresh token: a second refresh family beside the installation's own
// would be a credential reuse detection never sees (a copied access token
// could start one), and the installation's refresh token, untouched, gets
// the same ent at its next refresh. A retry after a lost answer finds
// everything in place and signs again.
func (s *Service) linkAddon(ctx context.Context, cred credential, addonSt *store.LicenseState, out attachment) (*AddonAttachment, error) {
	ref := store.AddonRef{LicenseID: out.ins.LicenseID, InstallationID: out.ins.ID, Product: out.ins.Product}
	now := s.now()
	var refusal error
	st, err := s.cfg.Store.UpdateLicense(ctx, cred.licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		ins, err := s.admitted(cred, st, now)
		if refusal = err; err != nil || slices.Contains(ins.Addons, ref) {
			return nil, nil
		}
		ins.Addons = withAddon(ins.Addons, ref)
		ins.UpdatedAt = now
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if refusal != nil {
		return nil, refusal
	}
	ins := installationOf(st, cred.installationID)
	toks, err := s.sign(ctx, st.License, *ins)
	if err != nil {
		return nil, err
	}
	view := s.view(st, ins)
	view.Entitlements = toks.ents
	return &AddonAttachment{Created: out.created, Tokens: *toks, License: view, Addon: s.addonView(addonSt, ref, ins.ID)}, nil
}

// withAddon is refs with ref in it, once.
func withAddon(refs []store.AddonRef, ref store.AddonRef) []store.AddonRef {
	if slices.Contains(refs, ref) {
		return refs
	}
	return append(slices.Clip(refs), ref)
}

// addonView is ref as seen from its base installation baseID, given the
// add-on licence's state.
func (s *Service) addonView(st *store.LicenseState, ref store.AddonRef, baseID string) AddonView {
	v := AddonView{LicenseID: ref.LicenseID, Product: ref.Product, InstallationID: ref.InstallationID, Entitlements: []string{}}
	if st == nil || st.License == nil {
		return v
	}
	v.Type, v.Status = st.License.Type, st.License.Status
	if s.addonHolds(st, ref, baseID, s.now()) {
		v.Attached = true
		v.Entitlements = slices.Clone(s.typeEntitlements(ref.Product, st.License.Type))
	}
	return v
}

// addonViews are an installation's add-ons, read from the store; one
// that cannot be read is shown by its ids alone.
func (s *Service) addonViews(ctx context.Context, ins *store.Installation) []AddonView {
	out := make([]AddonView, 0, len(ins.Addons))
	for _, ref := range ins.Addons {
		st, err := s.cfg.Store.LicenseState(ctx, ref.LicenseID)
		if err != nil {
			st = nil
		}
		out = append(out, s.addonView(st, ref, ins.ID))
	}
	return out
}

// detachAddons ends the attachments of a base installation that stopped
// being active (deactivated, released, cloned): each add-on's slot is
// freed, audited by actor. A failure is logged; the add-on's next attach
// repairs it (deadBases), and its entitlements stopped with the base.
func (s *Service) detachAddons(ctx context.Context, base store.Installation, actor, why string) {
	for _, ref := range base.Addons {
		now := s.now()
		_, err := s.cfg.Store.UpdateLicense(context.WithoutCancel(ctx), ref.LicenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
			in := installationOf(st, ref.InstallationID)
			if in == nil || !in.Active() || in.Base != base.ID {
				return nil, nil
			}
			detachInstallation(in, now)
			s.event(ctx, st, Event{Actor: actor, Action: store.AuditAddonDetached, LicenseID: ref.LicenseID,
				InstallationID: ref.InstallationID, Detail: in.Domain, Reason: why})
			return st, nil
		})
		if err != nil {
			s.log.Warn("detaching an add-on; its next attach frees the slot", zap.String("license_id", ref.LicenseID), zap.Error(err))
		}
	}
}

// followMove moves a base installation's add-ons with it: a domain move
// keeps them, on the new domain and class as the add-on's own rules see
// it. An add-on whose licence has no room there (its slots are held
// elsewhere: it was free on a local or staging base) is detached, audited,
// rather than over its limit.
// It reports whether it detached any.
func (s *Service) followMove(ctx context.Context, base store.Installation) (detached bool) {
	for _, ref := range base.Addons {
		now := s.now()
		_, err := s.cfg.Store.UpdateLicense(context.WithoutCancel(ctx), ref.LicenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
			in := installationOf(st, ref.InstallationID)
			if in == nil || !in.Active() || in.Base != base.ID || in.Domain == base.Domain {
				return nil, nil
			}
			class, refusal := s.addonClassOn(st, in.ID, base.Domain, now)
			if refusal != nil {
				detachInstallation(in, now)
				detached = true
				s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditAddonDetached, LicenseID: ref.LicenseID,
					InstallationID: in.ID, Detail: in.Domain, Reason: "its base installation moved to " + base.Domain + ": " + refusal.Detail})
				return st, nil
			}
			in.Domain, in.InstallClass, in.UpdatedAt = base.Domain, class, now
			return st, nil
		})
		if err != nil {
			s.log.Warn("moving an add-on with its installation", zap.String("license_id", ref.LicenseID), zap.Error(err))
		}
	}
	return detached
}

// addonClassOn is the class the add-on installation id would have on
// domain under its licence's rules, or the refusal of a domain its
// licence has no room on. The licence's standing and lock are not asked:
// they decide what the add-on grants, not where it may follow its base.
func (s *Service) addonClassOn(st *store.LicenseState, id, domain string, now time.Time) (string, *Error) {
	p := s.product(st.License.Product)
	if p == nil {
		return "", &Error{Code: CodeWrongProduct, Detail: "the add-on's product is no longer served here"}
	}
	pl := s.policyLicense(st.License)
	pl.Status, pl.Locked, pl.ExpiresAt = store.LicenseActive, false, nil
	d, ref := p.Rules.DecideActivation(pl, policyInstallations(st.Installations), domain, id, now)
	if ref != nil {
		return "", fromRefusal(ref)
	}
	return string(d.Class), nil
}

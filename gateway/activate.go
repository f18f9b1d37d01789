package gateway

import (
	"context"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
	"github.com/licensegate/licensegate/upstreams"
)

// ActivateRequest is an installer's activation.
type ActivateRequest struct {
	Key      string
	Domain   string
	IP       string // claimed by the installer; recorded only
	Product  string
	Label    string
	ClientIP string // the connection's address, trusted
	// Budget bounds the unvindicated keys this request's handler may put
	// to each marketplace (nil: unbounded).
	Budget *FailureBudget
}

// Activate verifies a key (upstream at most once), applies the product's
// activation rules, records the installation and issues tokens.
func (s *Service) Activate(ctx context.Context, req ActivateRequest) (*Activation, error) {
	domain, err := s.validateActivation(&req)
	if err != nil {
		return nil, err
	}
	cands, err := s.candidates(req.Key, req.Product)
	if err != nil {
		return nil, err
	}
	lic, err := s.resolveLicense(ctx, cands, req, domain)
	if err != nil {
		return nil, err
	}
	return s.activateLicense(ctx, lic, req, domain)
}

func (s *Service) validateActivation(req *ActivateRequest) (string, error) {
	fields := map[string][]string{}
	if req.Key == "" {
		fields["license_key"] = append(fields["license_key"], "is required")
	}
	domain, problem := domainField(req.Domain)
	if problem != "" {
		fields["domain"] = append(fields["domain"], problem)
	}
	if req.IP != "" {
		// No zone: a server's address has none worth recording, and
		// netip would take kilobytes of text as an IPv6 zone (issue 20, L3).
		if addr, err := netip.ParseAddr(req.IP); err != nil || addr.Zone() != "" || len(req.IP) > maxIPLength {
			fields["ip"] = append(fields["ip"], "is not an IPv4 or IPv6 address")
		}
	}
	if len(req.Label) > maxLabelLength {
		fields["label"] = append(fields["label"], "is longer than 64 characters")
	}
	if !utf8.ValidString(req.Label) || strings.ContainsFunc(req.Label, func(r rune) bool { return !unicode.IsPrint(r) }) {
		// shown to the author in the admin API and CLI: no control or
		// invisible formatting characters (U+202E would reverse the line)
		fields["label"] = append(fields["label"], "must be printable text")
	}
	if req.Product != "" && s.product(req.Product) == nil {
		fields["product"] = append(fields["product"], "is not a product of this gateway")
	}
	if len(fields) > 0 {
		return "", Invalid(fields)
	}
	return domain, nil
}

// found is a licence identified for an activation: either stored already or
// freshly verified (verdict set).
type found struct {
	cand    candidate
	state   *store.LicenseState
	verdict *upstreams.Verdict
}

// resolveLicense is findLicense shared by concurrent activations of one
// key: one of them looks the key up (asking the source at most once) and
// stores a newly verified licence before the others are answered, so a
// request arriving just after finds it in the store instead of asking the
// source again.
func (s *Service) resolveLicense(ctx context.Context, cands []candidate, req ActivateRequest, domain string) (*found, error) {
	v, err, _ := s.flights.Do(flightKey(cands, req.Product, domain), func() (any, error) {
		fctx := context.WithoutCancel(ctx)
		f, err := s.findLicense(fctx, cands, req, domain)
		if err != nil {
			return nil, err
		}
		// A licence a local source vouched for is stored by the
		// activation's own write, which takes it from the verdict as well:
		// asking that source again costs nothing, so nothing is gained by
		// committing it first (one commit and its fsyncs less for every
		// new licence on the embedded store). A marketplace's verdict is
		// stored before anyone is answered, so a request arriving just
		// after finds it instead of asking the marketplace again.
		if s.servesVerified(f, req.Product) && !isLocal(f.cand.source) {
			if err := s.recordVerified(fctx, f); err != nil {
				return nil, err
			}
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*found), nil
}

// flightKey identifies an activation's licence question: the candidate
// licences, the product asked for, and the domain when a source's answer
// depends on it.
func flightKey(cands []candidate, product, domain string) string {
	var b strings.Builder
	for _, c := range cands {
		b.WriteString(c.licenseID)
		b.WriteByte('|')
		if d, ok := c.source.(upstreams.DomainAware); ok && d.UsesDomain() {
			b.WriteString(domain)
		}
		b.WriteByte('|')
	}
	b.WriteString(product)
	return b.String()
}

// servesVerified reports whether a freshly verified licence is one this
// activation can use; a key of another product is refused (wrong_product)
// with nothing stored.
func (s *Service) servesVerified(f *found, wantProduct string) bool {
	if f.verdict == nil || f.verdict.Outcome != upstreams.Valid {
		return true
	}
	_, err := s.productFor(f, wantProduct)
	return err == nil
}

// productFor returns the product a found licence would be activated for:
// the one its source verified, or the stored one. It must be served here,
// by that source, and be the product the installer asked for, if any.
func (s *Service) productFor(f *found, wantProduct string) (*Product, *Error) {
	name := ""
	if v := f.verdict; v != nil && v.Outcome == upstreams.Valid {
		name = v.Record.Product
	} else {
		name = f.state.License.Product
	}
	p := s.product(name)
	if p == nil || !p.hasSource(f.cand.source.Name()) || (wantProduct != "" && wantProduct != name) {
		return nil, &Error{Code: CodeWrongProduct, Detail: "This licence belongs to another product."}
	}
	return p, nil
}

// recordVerified stores the licence a source just vindicated, without any
// installation yet.
func (s *Service) recordVerified(ctx context.Context, f *found) error {
	if f.verdict == nil || f.verdict.Outcome != upstreams.Valid || f.state.License != nil {
		return nil
	}
	now := s.now()
	st, err := s.cfg.Store.UpdateLicense(ctx, f.cand.licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		if st.License != nil {
			return nil, nil // another instance stored it first
		}
		st.License = s.mergeLicense(nil, f, f.verdict.Record.Product, now)
		return st, nil
	})
	if err != nil {
		return storeUnavailable(err)
	}
	f.state = st
	if st.License != nil {
		s.recheck.hint(st.License.NextCheckAt)
	}
	return nil
}

// findLicense returns the stored licence for the key, or verifies it with
// the sources in order. A stored licence is not verified again, except at a
// local source (the author's key file), where asking costs nothing.
func (s *Service) findLicense(ctx context.Context, cands []candidate, req ActivateRequest, domain string) (*found, error) {
	var stored []*found
	for _, c := range cands {
		st, err := s.cfg.Store.LicenseState(ctx, c.licenseID)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		if st.License != nil {
			stored = append(stored, &found{cand: c, state: st})
		}
	}
	for _, f := range stored {
		if !isLocal(f.cand.source) {
			return f, nil
		}
	}
	var unknown *upstreams.Verdict
	var limited time.Duration // the longest wait for a source's failure budget
	for _, c := range cands {
		var ticket *budgetTicket
		if !isLocal(c.source) {
			var wait time.Duration
			if ticket, wait = req.Budget.take(c.source.Name(), req.ClientIP); wait > 0 {
				limited = max(limited, wait)
				continue
			}
		}
		v := c.source.Verify(ctx, upstreams.Request{Key: c.key, Product: req.Product, Domain: domain, IP: req.IP})
		ticket.settle(v.Outcome == upstreams.Valid)
		switch {
		case v.Outcome == upstreams.Valid:
			return &found{cand: c, state: stateOf(stored, c), verdict: &v}, nil
		case v.Outcome == upstreams.Invalid && v.Reason == upstreams.NotFound:
			if st := stateOf(stored, c); st.License != nil {
				// The author's file lost a row it had (mid-write, or a
				// mistake): that says nothing about the buyer. Only an
				// explicit status changes a stored licence.
				return &found{cand: c, state: st}, nil
			}
			// another store may know the key
		case v.Outcome == upstreams.Invalid:
			return &found{cand: c, state: stateOf(stored, c), verdict: &v}, nil
		default:
			// The resilience layer has logged the failure; a refused
			// author credential is also an event for the author.
			s.noteVerdict(ctx, c.source.Name(), v)
			if unknown == nil || v.RetryAfter > unknown.RetryAfter {
				unknown = &v
			}
		}
	}
	if limited > 0 {
		return nil, &Error{Code: CodeRateLimited, Detail: "Too many unknown licence keys are being tried right now. Please wait a moment and try again.", RetryAfter: limited}
	}
	if unknown != nil {
		retry := unknown.RetryAfter
		if retry <= 0 {
			retry = 30 * time.Second
		}
		return nil, &Error{Code: CodeUpstreamUnavailable, Detail: "The licence could not be verified right now because the marketplace is unavailable. Please try again shortly.", RetryAfter: retry, Cause: unknown.Cause}
	}
	return nil, refusalForVerdict(upstreams.NotFound)
}

func stateOf(stored []*found, c candidate) *store.LicenseState {
	for _, f := range stored {
		if f.cand.licenseID == c.licenseID {
			return f.state
		}
	}
	return &store.LicenseState{}
}

// refusalForVerdict maps a definitive "no" to the public error.
func refusalForVerdict(r upstreams.Reason) *Error {
	switch r {
	case upstreams.NotFound:
		return &Error{Code: CodeLicenseNotFound, Detail: "This licence key or purchase code does not exist."}
	case upstreams.Expired:
		return &Error{Code: CodeLicenseExpired, Detail: "This licence has expired."}
	case upstreams.Suspended, upstreams.Disabled:
		return &Error{Code: CodeLicenseSuspended, Detail: "This licence has been suspended or disabled. Please contact the author."}
	case upstreams.WrongProduct:
		return &Error{Code: CodeWrongProduct, Detail: "This licence belongs to another product."}
	case upstreams.DomainNotAllowed:
		return &Error{Code: CodeDomainNotAllowed, Detail: "This licence may not be activated on this domain."}
	default: // revoked, refunded
		return &Error{Code: CodeLicenseRevoked, Detail: "This licence has been revoked or refunded."}
	}
}

func (s *Service) activateLicense(ctx context.Context, f *found, req ActivateRequest, domain string) (*Activation, error) {
	v := f.verdict
	if v != nil && v.Outcome == upstreams.Invalid && f.state.License == nil {
		return nil, refusalForVerdict(v.Reason)
	}
	p, refused := s.productFor(f, req.Product)
	if refused != nil {
		return nil, refused
	}
	if len(p.AddonOf) > 0 {
		return nil, &Error{Code: CodeWrongProduct, Detail: "This is an add-on licence (" + p.Name + "): attach it to an installation of " +
			strings.Join(p.AddonOf, " or ") + " from that product, not on its own."}
	}
	// Signing keys first: a re-activation that commits (superseding the
	// installation's tokens) should not then fail for want of them.
	if err := s.EnsureKeys(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	var out activation
	// The refresh family is named before the decision, so the installation
	// records it, and the family's record is stored, in the same write
	// (Installation.Family, LicenseState.Families): one commit for an
	// activation on the embedded store.
	rt, familyID := tokens.NewRefresh("")
	st, err := s.cfg.Store.UpdateLicense(ctx, f.cand.licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		before, prev := licenseFacts(st.License), copyLicense(st.License)
		st.License = s.mergeLicense(st.License, f, p.Name, now)
		var write bool
		out, write = decideActivation(p, st, req, domain, answered(f), familyID, now)
		if !write && licenseFacts(st.License) == before {
			// A refused or repeated activation of an unchanged licence
			// costs no write.
			return nil, nil
		}
		pruneInstallations(st, now)
		for _, ev := range licenseEvents(prev, st.License, ActorGateway) {
			s.event(ctx, st, ev)
		}
		s.activationEvent(ctx, st, out, req)
		if out.refusal == nil {
			st.Families = []store.RefreshFamily{s.familyOf(rt, st.License.ID, out.ins)}
		}
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if st != nil && st.License != nil {
		s.recheck.hint(st.License.NextCheckAt)
	}
	for _, in := range out.released {
		s.detachAddons(ctx, in, ActorGateway, "its base installation "+in.ID+" was released (idle)")
	}
	if out.refusal != nil {
		if out.refusal.Code == CodeActivationLimit {
			out.refusal.PortalURL = s.portalURL(p.Name, f.cand.licenseID)
		}
		return nil, out.refusal
	}
	toks, err := s.sign(ctx, st.License, out.ins) // its family is stored
	if err != nil {
		return nil, err
	}
	toks.RefreshToken = rt
	if out.supersededFamily != "" {
		s.dropFamily(ctx, out.supersededFamily)
	}
	if out.created {
		s.daily.add(now, seriesActivations)
	}
	view := s.view(st, &out.ins)
	view.Entitlements = toks.ents
	return &Activation{Created: out.created, Tokens: *toks, License: view}, nil
}

// copyLicense is a copy of lic (nil: nil), to compare a decision's
// outcome with.
func copyLicense(lic *store.License) *store.License {
	if lic == nil {
		return nil
	}
	l := *lic
	return &l
}

// activation is what one activation decided, for its audit events and its
// answer.
type activation struct {
	refusal *Error
	ins     store.Installation
	created bool
	// reactivated: ins was re-activated (its earlier tokens superseded),
	// from previousIP; otherNetwork when that was another network.
	reactivated  bool
	previousIP   string
	otherNetwork bool
	// quiet: a repeat of the installation's last re-activation (same
	// client address, within the window): no audit or outbox entry.
	quiet bool
	// supersededFamily is the refresh family the re-activation replaced,
	// deleted once the new one is stored.
	supersededFamily string
	// locked is the reason the licence was just locked, or "".
	locked string
	// released are the idle installations whose slots it took.
	released []store.Installation
}

// answered reports whether the licence's source answered this activation
// with a valid record: its expiry is then the source's word, not a date
// to give grace past (expiry_grace is for a source that cannot answer).
func answered(f *found) bool {
	return f.verdict != nil && f.verdict.Outcome == upstreams.Valid
}

// decideActivation applies an activation to st (a copy the store handed
// out) and reports whether st must be written. A refused attempt still
// records its leak sighting; one that crosses leak_threshold locks the
// licence and is refused. answered says the source just vouched for the
// licence's record: a passed expiry in it gets no grace.
func decideActivation(p *Product, st *store.LicenseState, req ActivateRequest, domain string, answered bool, family string, now time.Time) (activation, bool) {
	lic := st.License
	pl := policyLicense(lic)
	if !answered {
		pl.ExpiryGrace = p.recheck.ExpiryGrace
	}
	if ref := policy.Standing(pl, now); ref != nil {
		return activation{refusal: fromRefusal(ref)}, false
	}
	installs := policyInstallations(st.Installations)
	if lic.Locked && homeReactivation(st, domain, req.ClientIP, now) {
		// The buyer re-entering the code on their own installation from
		// the network it is known from always wins, lock or not: a leaked
		// code's holder cannot lock the buyer out of their own site.
		pl.Locked = false
	}
	d, release, ref := p.Rules.DecideActivationReleasing(pl, installs, domain, "", now)
	var out activation
	var reuse *store.Installation
	home := ""
	if ref == nil && d.Reuse != "" {
		reuse = st.Installation(d.Reuse)
		settleHome(reuse, now)
		home = homeIP(reuse) // read before the re-activation overwrites ClientIP
		out.previousIP = reuse.ClientIP
		out.otherNetwork = foreignTo(home, req.ClientIP)
	}
	write := false
	if !lic.Locked {
		var reason string
		write, reason = observeLeak(p, lic, st, installs, domain, req.ClientIP, out.otherNetwork, now)
		if reason != "" {
			lic.Locked, lic.UpdatedAt = true, now
			return activation{locked: reason, refusal: fromRefusal(policy.LockedRefusal())}, true
		}
	}
	if ref != nil {
		out.refusal = fromRefusal(ref)
		return out, write
	}
	if reuse != nil {
		if out.otherNetwork && now.Before(reuse.ReclaimedAt.Add(p.MoveCooldown)) {
			// The buyer took the installation back from its own network
			// within the cooldown: another network taking it again is the
			// leaked code's ping-pong, refused (its attempt already counted
			// as a sighting above).
			out.refusal = &Error{Code: CodeInstallationContested, RetryAfter: retryAfter(reuse.ReclaimedAt.Add(p.MoveCooldown).Sub(now)),
				Detail: "This installation was re-activated from its own network recently; it cannot be re-activated from another network yet."}
			return out, write
		}
		repeat := reuse.ClientIP == req.ClientIP && !reuse.ReactivationsSince.IsZero() &&
			now.Sub(reuse.ReactivationsSince) < reactivationWindow
		if wait := countReactivation(reuse, out.otherNetwork, now); wait > 0 {
			out.refusal = &Error{Code: CodeRateLimited, RetryAfter: wait,
				Detail: "This installation was re-activated too often. Please wait a while and try again."}
			return out, write
		}
		// The installation's earlier tokens stop working: an honest
		// reinstall costs nothing, and a leaked code used to claim the
		// buyer's domain holds tokens the buyer's next re-activation kills.
		out.quiet = repeat && !out.otherNetwork
		out.supersededFamily, reuse.Family = reuse.Family, family
		reuse.Generation++
		if out.otherNetwork {
			// Another network's tokens: admitted at the gate, but they
			// cannot deactivate or move the installation for the
			// cooldown, and the home network's next re-activation
			// supersedes them.
			reuse.HomeIP, reuse.ForeignUntil = home, now.Add(p.MoveCooldown)
		} else {
			if !reuse.ForeignUntil.IsZero() {
				reuse.ReclaimedAt = now // taken back from a foreign re-activation
			}
			reuse.HomeIP, reuse.ForeignUntil = req.ClientIP, time.Time{}
		}
		reuse.ClientIP, reuse.IP, reuse.UpdatedAt = req.ClientIP, req.IP, now
		if req.Label != "" {
			reuse.Label = req.Label
		}
		out.ins, out.reactivated = *reuse, true
		return out, true
	}
	out.released = releaseIdle(st, release, now)
	out.created = true
	out.ins = store.Installation{
		ID: newInstallationID(), LicenseID: lic.ID, Product: p.Name, Domain: domain,
		InstallClass: string(d.Class), Status: store.InstallationActive, Label: req.Label,
		IP: req.IP, ClientIP: req.ClientIP, HomeIP: req.ClientIP, Family: family, Generation: 1, CreatedAt: now, UpdatedAt: now,
	}
	st.Installations = append(st.Installations, out.ins)
	return out, true
}

// activationEvent records what an activation changes, with the change.
func (s *Service) activationEvent(ctx context.Context, st *store.LicenseState, out activation, req ActivateRequest) {
	licenseID := st.License.ID
	switch {
	case out.locked != "":
		s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditLicenseLocked,
			LicenseID: licenseID, Reason: out.locked, ClientIP: req.ClientIP})
	case out.created:
		s.releasedEvents(ctx, st, out.released, "its slot was needed by an activation")
		s.event(ctx, st, Event{Actor: ActorInstaller, Action: store.AuditInstallationCreated,
			LicenseID: licenseID, InstallationID: out.ins.ID, Detail: out.ins.Domain, ClientIP: req.ClientIP})
	case out.reactivated && out.quiet:
		// The same client re-activating again within the window: the
		// first one's entry stands for it (the store does not grow with
		// a reinstall loop).
	case out.reactivated:
		ev := Event{Actor: ActorInstaller, Action: store.AuditInstallationReactivated,
			LicenseID: licenseID, InstallationID: out.ins.ID, Detail: out.ins.Domain,
			ClientIP: req.ClientIP, PreviousClientIP: out.previousIP}
		if out.otherNetwork {
			ev.Reason = "from another network"
		}
		s.event(ctx, st, ev)
	}
}

// mergeLicense returns the licence record an activation stores: the
// stored one (or a new one), updated by a fresh verdict when there is one.
// A valid record is copied by mergeRecord, and then the activation's own
// rules apply: the product it resolved, the first recheck, and a status
// the key's own source set lifted. A definitive "no" (only a local source
// is asked about a stored licence) sets the status it names.
func (s *Service) mergeLicense(cur *store.License, f *found, product string, now time.Time) *store.License {
	lic := cur
	if lic == nil {
		lic = &store.License{
			ID: f.cand.licenseID, Source: f.cand.source.Name(), Status: store.LicenseActive,
			KeyCiphertext: s.cfg.Master.Seal([]byte(f.cand.key), []byte(f.cand.licenseID)),
			CreatedAt:     now,
		}
	}
	lic.UpdatedAt = now
	v := f.verdict
	if v == nil {
		return lic
	}
	switch v.Outcome {
	case upstreams.Valid:
		lic.Product = product
		mergeRecord(lic, v.Record, wholeRecord, now)
		s.noteEmail(lic, v.Record.Email)
		lic.NextCheckAt = s.firstCheck(lic, product, now)
		if lic.StatusBy == statusBySource {
			lic.Status, lic.StatusBy = store.LicenseActive, ""
		}
	case upstreams.Invalid:
		lic.Status, lic.StatusBy = statusForReason(v.Reason), statusBySource
		lic.VerifiedAt = now
	}
	return lic
}

package policy

import (
	"fmt"
	"time"
)

// Treatment is how a product counts local and staging installations.
type Treatment string

// Treatments (Caddyfile: local_domains / staging_subdomains).
const (
	Free Treatment = "free" // allowed, no slot used
	Slot Treatment = "slot" // allowed, uses a production slot
	Deny Treatment = "deny" // refused
)

// ParseTreatment validates a configured treatment.
func ParseTreatment(s string) (Treatment, error) {
	switch t := Treatment(s); t {
	case Free, Slot, Deny:
		return t, nil
	}
	return "", fmt.Errorf("%q is not free, slot or deny", s)
}

// Rules are a product's activation rules.
type Rules struct {
	Activations       int // production slots per licence (default 1)
	LocalDomains      Treatment
	StagingSubdomains Treatment
	// LocalCap bounds free local installations per licence, StagingCap free
	// staging installations per production domain (0: the defaults). A free
	// install that were unbounded would let one code run any number of
	// copies on *.test names, and grow the licence record without end.
	LocalCap   int
	StagingCap int
	// StagingHosts are the author's own staging host suffixes (staging_hosts,
	// normalised by NormalizeSuffix), besides PlatformStagingSuffixes.
	StagingHosts []string
	// ReleaseIdle frees the slot of an installation unused this long
	// (release_idle; 0: never). See Idle.
	ReleaseIdle time.Duration
}

// Default caps on free installations (SPEC section 4).
const (
	DefaultLocalCap   = 5
	DefaultStagingCap = 3
)

// Refusal codes: the same stable strings the installer API answers with.
const (
	CodeLicenseRevoked   = "license_revoked"
	CodeLicenseSuspended = "license_suspended"
	CodeLicenseExpired   = "license_expired"
	CodeLicenseLocked    = "license_locked"
	CodeDomainNotAllowed = "domain_not_allowed"
	CodeActivationLimit  = "activation_limit_reached"
	CodeDomainInUse      = "domain_in_use"
)

// Refusal is a decision not to activate; Code is the public error code.
type Refusal struct {
	Code   string
	Detail string
	// Domains lists the domains holding slots, for activation_limit_reached.
	Domains []string
	// Holders are the installations behind Domains, for the buyer to
	// recognise which to deactivate (the answer masks their domains).
	Holders []Installation
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Detail }

// License is what the decision needs to know about a licence.
type License struct {
	Status    string // active, flagged, suspended, revoked, expired
	Locked    bool
	Type      string
	ExpiresAt *time.Time
	// ExpiryGrace is how long past ExpiresAt the licence still serves
	// while its source has not confirmed the expiry (the product's
	// expiry_grace, SPEC section 7): a buyer who renewed is not cut off by
	// an outage at the moment of expiry. A confirmed expiry sets the
	// status to expired, which refuses at once. 0: none.
	ExpiryGrace time.Duration
	Limit       int // the licence's own slot limit from its source; 0: the product's
}

// Installation is what the decision needs to know about an existing
// installation of the licence.
type Installation struct {
	ID     string
	Domain string
	Class  InstallClass
	Active bool
	// Shown to the buyer in activation_limit_reached, with Domain masked.
	Label      string
	CreatedAt  time.Time
	LastSeenAt time.Time
	// EndedAt is when it stopped being active (deactivated, moved away from,
	// released or cloned); zero while active.
	EndedAt time.Time
	// Marked says its buyer marked it staging (MarkStaging): staging
	// whatever else the licence holds, like a platform's staging host.
	Marked bool
}

// Decision is the outcome of a successful activation decision.
type Decision struct {
	// Reuse is the id of the active installation on the same domain, when
	// there is one: the installation is re-activated (its earlier tokens
	// are superseded) instead of a second one made.
	Reuse    string
	Class    InstallClass
	UsesSlot bool
	// SlotsUsed counts slot-holding installations after the activation.
	SlotsUsed int
	Limit     int
}

// Standing checks a licence may be used at all at time now.
func Standing(l License, now time.Time) *Refusal {
	switch l.Status {
	case "active", "flagged": // flagged licences still serve (manual recheck mode)
	case "suspended":
		return &Refusal{Code: CodeLicenseSuspended, Detail: "This licence has been suspended. Please contact the author."}
	case "revoked":
		return &Refusal{Code: CodeLicenseRevoked, Detail: "This licence has been revoked or refunded."}
	case "expired":
		return &Refusal{Code: CodeLicenseExpired, Detail: "This licence has expired."}
	default:
		return &Refusal{Code: CodeLicenseSuspended, Detail: "This licence is not in good standing."}
	}
	if l.ExpiresAt != nil && !now.Before(l.ExpiresAt.Add(l.ExpiryGrace)) {
		return &Refusal{Code: CodeLicenseExpired, Detail: "This licence expired on " + l.ExpiresAt.UTC().Format("2006-01-02") + "."}
	}
	return nil
}

// Limit returns the licence's production slot count.
func (r Rules) Limit(l License) int {
	if l.Limit > 0 {
		return l.Limit
	}
	if r.Activations > 0 {
		return r.Activations
	}
	return 1
}

// Classify returns domain's install class given the licence's active
// installations: local, staging (a hosting platform's staging host, or a
// subdomain of an active production installation), or production.
func (r Rules) Classify(domain string, installations []Installation) InstallClass {
	switch {
	case IsLocal(domain):
		return ClassLocal
	case StagingHost(domain, r.StagingHosts), productionParent(domain, installations) != "":
		return ClassStaging
	default:
		return ClassProduction
	}
}

// HoldsSlot reports whether an installation of class c uses a production
// slot under these rules.
func (r Rules) HoldsSlot(c InstallClass) bool {
	switch c {
	case ClassLocal:
		return r.LocalDomains == Slot
	case ClassStaging:
		return r.StagingSubdomains == Slot
	default:
		return true
	}
}

func (r Rules) treatment(c InstallClass) Treatment {
	switch c {
	case ClassLocal:
		return r.LocalDomains
	case ClassStaging:
		return r.StagingSubdomains
	default:
		return Slot
	}
}

// SlotDomains returns the domains of active installations holding slots,
// excluding the installation named by exclude.
func (r Rules) SlotDomains(installations []Installation, exclude string) []string {
	return domains(r.SlotHolders(installations, exclude))
}

// SlotHolders returns the active installations holding slots, excluding
// the installation named by exclude.
func (r Rules) SlotHolders(installations []Installation, exclude string) []Installation {
	others := without(installations, exclude)
	var out []Installation
	for _, in := range others {
		if in.Active && r.HoldsSlot(r.EffectiveClass(in, others)) {
			out = append(out, in)
		}
	}
	return out
}

// freeHolders returns the active installations of class c that hold no
// slot and, for staging, sit under the same production domain as domain.
func (r Rules) freeHolders(installations []Installation, c InstallClass, domain string) []Installation {
	parent := productionParent(domain, installations)
	var out []Installation
	for _, in := range installations {
		if !in.Active || r.EffectiveClass(in, installations) != c || r.HoldsSlot(c) {
			continue
		}
		if c == ClassStaging && productionParent(in.Domain, installations) != parent {
			continue
		}
		out = append(out, in)
	}
	return out
}

// freeCap is how many free installations of class c one licence (local) or
// one production domain (staging) may have.
func (r Rules) freeCap(c InstallClass) int {
	switch {
	case c == ClassLocal && r.LocalCap > 0:
		return r.LocalCap
	case c == ClassLocal:
		return DefaultLocalCap
	case r.StagingCap > 0:
		return r.StagingCap
	default:
		return DefaultStagingCap
	}
}

// productionParent is the active production domain domain is a subdomain
// of, or "".
func productionParent(domain string, installations []Installation) string {
	for _, p := range installations {
		if p.Active && p.Class == ClassProduction && IsSubdomainOf(domain, p.Domain) {
			return p.Domain
		}
	}
	return ""
}

func without(installations []Installation, exclude string) []Installation {
	if exclude == "" {
		return installations
	}
	out := make([]Installation, 0, len(installations))
	for _, in := range installations {
		if in.ID != exclude {
			out = append(out, in)
		}
	}
	return out
}

func domains(ins []Installation) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Domain)
	}
	return out
}

// EffectiveClass is an installation's class as things stand: a staging
// subdomain whose production parent was deactivated or moved away counts
// as production again, so deactivating the parent cannot leave free
// sites. A hosting platform's staging host is staging whatever else the
// licence holds (it was free before any production domain, and stays so).
func (r Rules) EffectiveClass(in Installation, installations []Installation) InstallClass {
	if in.Class != ClassStaging || in.Marked || productionParent(in.Domain, installations) != "" || StagingHost(in.Domain, r.StagingHosts) {
		return in.Class
	}
	return ClassProduction
}

// MarkStaging decides whether a buyer may mark the active production
// installation id a staging one (SPEC section 14: "this is my staging
// copy"): staging installs must be free under these rules, and the
// licence's free staging installs outside any production domain (the
// platforms' staging hosts and marked ones, one cap per licence) must
// have room.
func (r Rules) MarkStaging(id string, installations []Installation) *Refusal {
	var target *Installation
	for i := range installations {
		if installations[i].ID == id {
			target = &installations[i]
		}
	}
	switch {
	case target == nil || !target.Active:
		return &Refusal{Code: CodeDomainNotAllowed, Detail: "Only an active installation can be marked as staging."}
	case r.EffectiveClass(*target, installations) != ClassProduction:
		return &Refusal{Code: CodeDomainNotAllowed, Detail: target.Domain + " is not a production installation."}
	case r.HoldsSlot(ClassStaging) || r.StagingSubdomains == Deny:
		return &Refusal{Code: CodeDomainNotAllowed, Detail: "This product does not give staging installations free."}
	}
	others := without(installations, id)
	free := r.freeHolders(others, ClassStaging, "")
	if limit := r.freeCap(ClassStaging); len(free) >= limit {
		return &Refusal{
			Code:    CodeActivationLimit,
			Detail:  fmt.Sprintf("All %d free staging installation(s) outside a production domain are in use.", limit),
			Domains: domains(free), Holders: free,
		}
	}
	return nil
}

// DecideActivation decides whether the licence may be activated on domain
// (normalised). exclude names an installation to leave out of the
// accounting (the one being moved); it is empty for a new activation.
// It counts idle installations like any other; DecideActivationReleasing
// is the decision under release_idle.
func (r Rules) DecideActivation(l License, installations []Installation, domain, exclude string, now time.Time) (Decision, *Refusal) {
	if ref := Standing(l, now); ref != nil {
		return Decision{}, ref
	}
	limit := r.Limit(l)
	holders := r.SlotHolders(installations, exclude)
	for _, in := range installations {
		if in.Active && in.Domain == domain {
			if exclude != "" && in.ID != exclude {
				return Decision{}, &Refusal{Code: CodeDomainInUse, Detail: "This licence is already active on " + domain + "."}
			}
			if l.Locked {
				// A re-activation supersedes the installation's tokens: on a
				// locked licence that would hand the domain to whoever holds
				// the leaked code. The installation keeps the tokens it has.
				return Decision{}, LockedRefusal()
			}
			return Decision{Reuse: in.ID, Class: in.Class, UsesSlot: r.HoldsSlot(in.Class), SlotsUsed: len(holders), Limit: limit}, nil
		}
	}
	if l.Locked {
		return Decision{}, LockedRefusal()
	}
	others := without(installations, exclude)
	class := r.Classify(domain, others)
	if l.Type == "developer" && class != ClassLocal {
		return Decision{}, &Refusal{Code: CodeDomainNotAllowed, Detail: "A developer licence may only be installed on a local domain (localhost, *.test, *.local)."}
	}
	if r.treatment(class) == Deny {
		return Decision{}, &Refusal{Code: CodeDomainNotAllowed, Detail: fmt.Sprintf("%s installations are not allowed for this product.", class)}
	}
	d := Decision{Class: class, UsesSlot: r.HoldsSlot(class), SlotsUsed: len(holders), Limit: limit}
	if !d.UsesSlot {
		return d, r.checkFreeCap(others, class, domain)
	}
	if len(holders) >= limit {
		return Decision{}, &Refusal{
			Code:    CodeActivationLimit,
			Detail:  fmt.Sprintf("All %d activation(s) of this licence are in use. Deactivate one of the listed installations first.", limit),
			Domains: domains(holders), Holders: holders,
		}
	}
	d.SlotsUsed++
	return d, nil
}

// checkFreeCap refuses a free local or staging installation past its cap.
func (r Rules) checkFreeCap(installations []Installation, class InstallClass, domain string) *Refusal {
	free := r.freeHolders(installations, class, domain)
	limit := r.freeCap(class)
	if len(free) < limit {
		return nil
	}
	scope := "of this licence"
	if parent := productionParent(domain, installations); class == ClassStaging && parent != "" {
		scope = "under " + parent
	} else if class == ClassStaging {
		scope = "on hosting platforms' staging hosts"
	}
	return &Refusal{
		Code:    CodeActivationLimit,
		Detail:  fmt.Sprintf("All %d free %s installation(s) %s are in use. Deactivate one of the listed installations first.", limit, class, scope),
		Domains: domains(free), Holders: free,
	}
}

// LockedRefusal is the answer to an activation of a locked licence.
func LockedRefusal() *Refusal {
	return &Refusal{Code: CodeLicenseLocked, Detail: "This licence is locked for new activations; existing installations keep working. Please contact the author."}
}

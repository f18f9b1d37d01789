package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// Buyers (SPEC section 12): a buyer signed in to the portal owns the
// licences their sign-in proved (the purchases a marketplace listed for
// their account), and only those. A purchase code alone proves nothing: a
// leaked code's holder has it too.

// ErrNotOwned refuses a buyer's request about a licence their sign-in did
// not prove theirs: whether it exists is not said.
var ErrNotOwned = errors.New("not a licence of this buyer's")

// BuyerActor is a buyer as the audit log names them: buyer:<method>:<who>
// (buyer:envato:alice, buyer:email:3f2a9c...).
func BuyerActor(method, who string) string { return "buyer:" + method + ":" + who }

// OwnedLicences returns the ids of the stored licences that keys, listed
// for a buyer by source, are the keys of: each key's licence id is its
// keyed hash at the source, so no key is stored or compared in the clear.
// Keys that fit no format of the source, or whose licence was never
// activated, are skipped; products limits the answer to those products
// (none: every product served).
func (s *Service) OwnedLicences(ctx context.Context, source string, keys []string, products []string) ([]string, error) {
	src := s.cfg.Sources[source]
	if src == nil {
		return nil, nil
	}
	var ids []string
	for _, k := range keys {
		canon, err := src.CanonicalKey(k)
		if err != nil {
			continue
		}
		id := s.licenseID(source, canon)
		st, err := s.cfg.Store.LicenseState(ctx, id)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		lic := st.License
		if lic == nil || s.product(lic.Product) == nil || len(products) > 0 && !slices.Contains(products, lic.Product) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// OwnedLicence is a licence of a buyer's, with its installations: owned
// lists the licences their sign-in proved, and any other id is not found.
func (s *Service) OwnedLicence(ctx context.Context, owned []string, id string) (*LicenseDetail, error) {
	if !slices.Contains(owned, id) {
		return nil, ErrNotOwned
	}
	return s.License(ctx, id)
}

// DeactivateOwned frees an installation of a licence the buyer owns and
// revokes its tokens, audited with the buyer as actor. An installation of
// another licence is not found, whatever its id.
func (s *Service) DeactivateOwned(ctx context.Context, actor string, owned []string, licenseID, installationID string) (*LicenseDetail, error) {
	if !slices.Contains(owned, licenseID) {
		return nil, ErrNotOwned
	}
	find := func(st *store.LicenseState) (*store.Installation, error) {
		if ins := installationOf(st, installationID); ins != nil {
			return ins, nil
		}
		return nil, ErrNotFound
	}
	st, err := s.deactivate(ctx, licenseID, installationID, find, store.AuditEvent{Actor: actor, Reason: "deactivated by the buyer"})
	if err != nil {
		return nil, err
	}
	return s.detail(st), nil
}

// MarkStagingOwned marks an active production installation of a licence
// the buyer owns a staging copy (within the licence's free staging cap),
// which frees its production slot; audited with the buyer as actor. Its
// tokens keep working; the gate treats it as staging from then on
// (free_quota applies to it).
func (s *Service) MarkStagingOwned(ctx context.Context, actor string, owned []string, licenseID, installationID string) (*LicenseDetail, error) {
	if !slices.Contains(owned, licenseID) {
		return nil, ErrNotOwned
	}
	now := s.now()
	var refusal error
	st, err := s.cfg.Store.UpdateLicense(ctx, licenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
		refusal = nil
		ins := installationOf(st, installationID)
		switch {
		case ins == nil:
			refusal = ErrNotFound
		case ins.Base != "":
			refusal = &Error{Code: CodeDomainNotAllowed, Detail: "An add-on follows the installation it is attached to; mark that one instead."}
		case s.product(st.License.Product) == nil:
			refusal = &Error{Code: CodeWrongProduct, Detail: "This licence's product is no longer served here."}
		default:
			if ref := s.product(st.License.Product).Rules.MarkStaging(installationID, policyInstallations(st.Installations)); ref != nil {
				refusal = fromRefusal(ref)
			}
		}
		if refusal != nil {
			return nil, nil
		}
		ins.InstallClass, ins.MarkedStaging, ins.UpdatedAt = string(policy.ClassStaging), true, now
		s.event(ctx, st, Event{Actor: actor, Action: store.AuditInstallationStaging, LicenseID: licenseID,
			InstallationID: installationID, Detail: ins.Domain, Reason: "marked as staging by the buyer"})
		return st, nil
	})
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if refusal != nil {
		return nil, refusal
	}
	return s.detail(st), nil
}

// RefreshOwned is the portal's "I renewed my support": a recheck now of a
// licence the buyer owns, within its refresh_cooldown (AskRecheck). It
// says whether the source gave an answer.
func (s *Service) RefreshOwned(ctx context.Context, owned []string, licenseID string) (bool, error) {
	if !slices.Contains(owned, licenseID) {
		return false, ErrNotOwned
	}
	return s.AskRecheck(ctx, licenseID)
}

// portals are the buyer portals' addresses, by product ("" for every
// product): set by each portal as it is provisioned.
type portals struct {
	mu   sync.RWMutex
	urls map[string]string
}

// SetPortal tells the service that a buyer portal at baseURL (its origin
// and base path) serves products (none: every product), so that
// activation_limit_reached carries the licence's portal_url.
func (s *Service) SetPortal(baseURL string, products []string) {
	s.portals.mu.Lock()
	defer s.portals.mu.Unlock()
	if s.portals.urls == nil {
		s.portals.urls = map[string]string{}
	}
	if len(products) == 0 {
		products = []string{""}
	}
	for _, p := range products {
		s.portals.urls[p] = strings.TrimSuffix(baseURL, "/")
	}
}

// portalURL is the page of a licence of product in its portal, or "".
func (s *Service) portalURL(product, licenseID string) string {
	s.portals.mu.RLock()
	defer s.portals.mu.RUnlock()
	base, ok := s.portals.urls[product]
	if !ok {
		base, ok = s.portals.urls[""]
	}
	if !ok {
		return ""
	}
	return base + "/licenses/" + licenseID
}

// maxEmail bounds an e-mail address (RFC 5321's path limit).
const maxEmail = 254

// EmailHash is a buyer's e-mail address as a lookup key: keyed, of the
// address trimmed and lower-cased.
func (s *Service) EmailHash(email string) string {
	return s.cfg.Master.Hash("email", strings.ToLower(strings.TrimSpace(email)))
}

// EmailActor is a buyer signed in by e-mail as the audit log names them:
// buyer:email:<the first 12 characters of the address's keyed hash>.
func (s *Service) EmailActor(email string) string {
	return BuyerActor("email", s.EmailHash(email)[:12])
}

// noteEmail records the buyer's e-mail address a source reported, hashed
// for look-up and sealed for display; an answer without one keeps what
// is recorded, and the same address is not sealed again.
func (s *Service) noteEmail(lic *store.License, email string) {
	email = strings.TrimSpace(email)
	if email == "" || len(email) > maxEmail || !strings.Contains(email, "@") {
		return
	}
	if h := s.EmailHash(email); h != lic.EmailHash {
		lic.EmailHash = h
		lic.EmailSealed = s.cfg.Master.Seal([]byte(email), []byte("email|"+lic.ID))
	}
}

// EmailLicences returns the ids of the stored licences whose buyer's
// e-mail address is email, in products (none: every product served).
func (s *Service) EmailLicences(ctx context.Context, email string, products []string) ([]string, error) {
	if email = strings.TrimSpace(email); email == "" || len(email) > maxEmail {
		return nil, nil
	}
	found, err := s.cfg.Store.Lookup(ctx, store.EmailTerm(s.EmailHash(email)))
	if err != nil {
		return nil, storeUnavailable(err)
	}
	var ids []string
	for _, id := range found {
		st, err := s.cfg.Store.LicenseState(ctx, id)
		if err != nil {
			return nil, storeUnavailable(err)
		}
		if lic := st.License; lic != nil && s.product(lic.Product) != nil && (len(products) == 0 || slices.Contains(products, lic.Product)) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// EmailLink is what a sign-in link proves, once: the address it was sent
// to, its licences at the time, and where to land.
type EmailLink struct {
	Email    string   `json:"e"`
	Licenses []string `json:"l"`
	ReturnTo string   `json:"r,omitempty"`
}

// IssueEmailLink keeps a sign-in link for l, valid ttl, and returns its
// token (sealedRecord).
func (s *Service) IssueEmailLink(ctx context.Context, l EmailLink, ttl time.Duration) (string, error) {
	return s.keepSealed(ctx, "emaillink", l, ttl)
}

// RedeemEmailLink spends a sign-in link: the first redemption gets its
// EmailLink, any other (spent, expired, unknown, tampered) ErrNotFound.
func (s *Service) RedeemEmailLink(ctx context.Context, token string, ttl time.Duration) (*EmailLink, error) {
	var l EmailLink
	key, err := s.readSealed(ctx, "emaillink", token, &l)
	if err != nil {
		return nil, err
	}
	// Single use: the first to record its own mark as the link's spender
	// wins, across instances.
	mark := make([]byte, 16)
	_, _ = rand.Read(mark)
	got, err := s.cfg.Store.PutIdempotent(ctx, key+"_spent", mark, ttl)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	if !bytes.Equal(got, mark) {
		return nil, ErrNotFound
	}
	return &l, nil
}

// KeepSignIn keeps the licence ids a sign-in proved, for ttl, when they
// are more than a session cookie holds (a buyer with many licences), and
// returns the reference the session carries instead (sealedRecord).
func (s *Service) KeepSignIn(ctx context.Context, ids []string, ttl time.Duration) (string, error) {
	return s.keepSealed(ctx, "signin", ids, ttl)
}

// SignInLicences returns the ids KeepSignIn kept under ref: ErrNotFound
// once they expired (the session did too) or for a ref it never gave.
func (s *Service) SignInLicences(ctx context.Context, ref string) ([]string, error) {
	var ids []string
	if _, err := s.readSealed(ctx, "signin", ref, &ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// Sealed records are what the portal keeps for a while under a random
// token it hands out (a mailed link, a long session's licences): 256
// random bits, base64url; the store holds only the token's keyed hash as
// the key (an idempotency record, gone after its TTL) and the value
// sealed with the master secret, bound to that key.

// keepSealed stores v for ttl and returns its token.
func (s *Service) keepSealed(ctx context.Context, purpose string, v any, ttl time.Duration) (string, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	key := s.sealedKey(purpose, token)
	raw, err := json.Marshal(v)
	if err != nil {
		return "", &Error{Code: CodeInternal, Detail: "An internal error occurred.", Cause: err}
	}
	if _, err := s.cfg.Store.PutIdempotent(ctx, key, s.cfg.Master.Seal(raw, []byte(key)), ttl); err != nil {
		return "", storeUnavailable(err)
	}
	return token, nil
}

// readSealed reads the record token names into v and returns its key:
// ErrNotFound when it is gone (expired), was never given, or does not
// open.
func (s *Service) readSealed(ctx context.Context, purpose, token string, v any) (string, error) {
	if token == "" || len(token) > 64 {
		return "", ErrNotFound
	}
	key := s.sealedKey(purpose, token)
	sealed, err := s.cfg.Store.Idempotent(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", ErrNotFound
	case err != nil:
		return "", storeUnavailable(err)
	}
	raw, err := s.cfg.Master.Open(sealed, []byte(key))
	if err != nil || json.Unmarshal(raw, v) != nil {
		return "", ErrNotFound
	}
	return key, nil
}

func (s *Service) sealedKey(purpose, token string) string {
	return purpose + "_" + s.cfg.Master.Hash(purpose, token)
}

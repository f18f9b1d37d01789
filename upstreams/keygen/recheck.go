package keygen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/licensegate/licensegate/upstreams"
)

// A recheck reads the licence, never validate-key (see the package doc):
//
//	GET {base}/v1/accounts/{account}/licenses/{id}
//	Authorization: Bearer <token>
//
// id is the licence id recorded at activation (Record.VendorID), or, for a
// licence recorded before ids were, its key when the key is URL-safe
// (Keygen accepts a licence's key in place of its id). The answer is the
// licence (the same object validate-key includes) or 404 NOT_FOUND.
//
// The licence is classified as validate-key would, minus what depends on
// machines, users and check-ins (not about the purchase): a suspended or
// banned licence is Suspended; one past its expiry is Expired under a
// REVOKE_ACCESS or RESTRICT_ACCESS policy and valid (the expiry ending
// support) under MAINTAIN_ACCESS or ALLOW_ACCESS; a licence of a product
// we do not map is WrongProduct, which a recheck treats as unknown.

// errNoToken is the recheck's Unknown cause without a token: Keygen lets
// only a token read a licence.
var errNoToken = fmt.Errorf("%w: reading a Keygen licence needs a product or admin token (Caddyfile token)", upstreams.ErrRecheckUnsupported)

// errNoLicenceID is the recheck's Unknown cause for a licence recorded
// without its Keygen id whose key cannot stand in a URL (a signed key).
var errNoLicenceID = fmt.Errorf("%w: the Keygen licence id was not recorded and the key is not URL-safe; the next activation records it", upstreams.ErrRecheckUnsupported)

// Recheck implements upstreams.Rechecker.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	if s.auth == "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", Name, errNoToken))
	}
	mappings, key, err := upstreams.Prepare(s, s.products, req.Request(), errNoMapping)
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	id := strings.TrimSpace(req.VendorID)
	switch {
	case id != "" && !isAccount(id):
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the recorded licence id is not a Keygen id", Name))
	case id == "" && isAccount(key):
		id = key
	case id == "":
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", Name, errNoLicenceID))
	}
	hreq, err := http.NewRequest(http.MethodGet, s.accountURL+"/licenses/"+url.PathEscape(id), nil)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, upstreams.Redact(err, key, "[key]")))
	}
	callCtx := ctx
	if id == key { // a key URL-safe as it is: this call's span must not record it
		callCtx = upstreams.WithTracedPath(ctx, strings.TrimSuffix(hreq.URL.Path, key)+"[key]")
	}
	s.headers(hreq)
	resp, err := s.client.Do(callCtx, hreq)
	if err != nil {
		// the URL may hold the key
		return upstreams.Unavailable(Name, nil, upstreams.Redact(err, key, "[key]"))
	}
	if v, ok := s.refusal(resp); ok {
		return v
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return notFound(resp.Body)
	default:
		return upstreams.Unavailable(Name, resp, nil)
	}
	var a struct {
		Data *licence `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable licence: %w", Name, err))
	}
	if a.Data == nil || a.Data.ID == "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: an answer without the licence (check base_url)", Name))
	}
	if k := a.Data.Attributes.Key; k != "" && k != key {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the licence read is another key's", Name))
	}
	return s.recheckVerdict(ctx, a.Data, mappings)
}

// notFound accepts a 404 only in Keygen's JSON:API error shape with the
// NOT_FOUND code: a proxy's 404 page says nothing about the licence.
func notFound(body []byte) upstreams.Verdict {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err == nil {
		for _, x := range e.Errors {
			if x.Code == codeNotFound {
				return upstreams.InvalidVerdict(upstreams.NotFound)
			}
		}
	}
	return upstreams.UnknownVerdict(errors.New(Name + ": HTTP 404 without Keygen's NOT_FOUND error (check base_url and account)"))
}

// recheckVerdict classifies a licence read.
func (s *Source) recheckVerdict(ctx context.Context, lic *licence, mappings upstreams.ProductMap) upstreams.Verdict {
	productID := lic.Relationships.Product.id()
	if productID == "" {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: the licence names no product", Name))
	}
	product, ok := mappings.Product(productID)
	if !ok {
		return upstreams.InvalidVerdict(upstreams.WrongProduct)
	}
	if st := lic.Attributes.Status; lic.Attributes.Suspended || st == "SUSPENDED" || st == "BANNED" {
		return upstreams.InvalidVerdict(upstreams.Suspended)
	}
	rec := upstreams.Record{Product: product, LicensedTo: strings.TrimSpace(lic.Attributes.Name), VendorID: lic.ID,
		Refs: upstreams.AddVendorID(nil, upstreams.IDLicence, lic.ID)}
	if m := lic.Attributes.MaxMachines; m != nil {
		if *m < 0 {
			return upstreams.UnknownVerdict(fmt.Errorf("%s: negative maxMachines", Name))
		}
		rec.ActivationsLimit = *m
	}
	expiry := lic.Attributes.Expiry
	if expiry == nil {
		return s.valid(ctx, rec, lic)
	}
	t, err := upstreams.ParseTime(*expiry)
	if err != nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: expiry: %w", Name, err))
	}
	if t == nil || t.After(s.client.Now()) {
		rec.ExpiresAt = t
		return s.valid(ctx, rec, lic)
	}
	// past its expiry: the policy's expiration strategy decides
	p, v := s.policy(ctx, lic.Relationships.Policy.id())
	if v != nil {
		return *v
	}
	if !p.keepsAccess() {
		return upstreams.InvalidVerdict(upstreams.Expired)
	}
	rec.SupportUntil = t
	rec.Type = upstreams.TypeName(p.Name)
	return upstreams.ValidVerdict(rec)
}

// Interface guards
var _ upstreams.Rechecker = (*Source)(nil)

package keygen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// A licence's type is its Keygen policy's name ("Pro", "Team Plan" ->
// pro, team-plan; upstreams.TypeName), and a recheck of a licence past its
// expiry needs the policy's expiration strategy: both come from
//
//	GET {base}/v1/accounts/{account}/policies/{id}
//
// which needs the token. Policies are few and seldom edited, so each is
// read at most once per policyTTL and kept in a small cache.

// policyTTL is how long a policy read is used.
const policyTTL = time.Hour

// maxPolicies bounds the cache; beyond it the cache starts over.
const maxPolicies = 256

// policy is what the gateway reads of a Keygen policy.
type policy struct {
	Name string
	// ExpirationStrategy: REVOKE_ACCESS and RESTRICT_ACCESS refuse an
	// expired licence; MAINTAIN_ACCESS and ALLOW_ACCESS keep it valid.
	ExpirationStrategy string
}

// keepsAccess reports whether an expired licence of the policy stays valid.
func (p policy) keepsAccess() bool {
	return p.ExpirationStrategy == "MAINTAIN_ACCESS" || p.ExpirationStrategy == "ALLOW_ACCESS"
}

type policyEntry struct {
	policy policy
	until  time.Time
}

type policyCache struct {
	mu      sync.Mutex
	entries map[string]policyEntry
}

func (c *policyCache) get(id string, now time.Time) (policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !now.Before(e.until) {
		return policy{}, false
	}
	return e.policy, true
}

func (c *policyCache) put(id string, p policy, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxPolicies {
		c.entries = map[string]policyEntry{}
	}
	c.entries[id] = policyEntry{policy: p, until: now.Add(policyTTL)}
}

// valid completes the Valid verdict of a licence with its type: the
// policy's name when the token can read it, else upstreams.DefaultType.
// A policy that cannot be read now makes the verdict Unknown: a wrong type
// could grant or refuse a "require type" gate.
func (s *Source) valid(ctx context.Context, rec upstreams.Record, lic *licence) upstreams.Verdict {
	rec.Type = upstreams.DefaultType
	if s.auth == "" {
		return upstreams.ValidVerdict(rec)
	}
	p, v := s.policy(ctx, lic.Relationships.Policy.id())
	if v != nil {
		return *v
	}
	rec.Type = upstreams.TypeName(p.Name)
	return upstreams.ValidVerdict(rec)
}

// policy reads a policy, from the cache when fresh. A failure is the
// Unknown verdict to answer.
func (s *Source) policy(ctx context.Context, id string) (policy, *upstreams.Verdict) {
	fail := func(v upstreams.Verdict) (policy, *upstreams.Verdict) { return policy{}, &v }
	if id == "" || !isAccount(id) {
		return fail(upstreams.UnknownVerdict(fmt.Errorf("%s: the licence names no policy id", Name)))
	}
	if p, ok := s.policies.get(id, s.client.Now()); ok {
		return p, nil
	}
	hreq, err := http.NewRequest(http.MethodGet, s.accountURL+"/policies/"+url.PathEscape(id), nil)
	if err != nil {
		return fail(upstreams.UnknownVerdict(fmt.Errorf("%s: building request: %w", Name, err)))
	}
	s.headers(hreq)
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		return fail(upstreams.Unavailable(Name, nil, err))
	}
	if v, ok := s.refusal(resp); ok {
		return fail(v)
	}
	if resp.Status != http.StatusOK {
		return fail(upstreams.Unavailable(Name, resp, nil))
	}
	var a struct {
		Data *struct {
			ID         string `json:"id"`
			Attributes struct {
				Name               string `json:"name"`
				ExpirationStrategy string `json:"expirationStrategy"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil || a.Data == nil || a.Data.ID != id {
		return fail(upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable policy answer", Name)))
	}
	p := policy{Name: a.Data.Attributes.Name, ExpirationStrategy: a.Data.Attributes.ExpirationStrategy}
	s.policies.put(id, p, s.client.Now())
	return p, nil
}

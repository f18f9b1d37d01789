package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licensegate/licensegate/gateway"
)

// ForwardSet is a set of the headers the gate forwards, one bit each, in
// the order of forwardNames.
type ForwardSet uint8

// forwardNames are the forward option's names, and ForwardHeaders their
// headers (canonical: set in the map directly). The last,
// entitlements, is opt-in: the default set is the six before it.
var (
	forwardNames   = [...]string{"installation", "product", "domain", "type", "support_active", "class", "entitlements"}
	ForwardHeaders = [...]string{"X-License-Installation", "X-License-Product", "X-License-Domain", "X-License-Type", "X-License-Support-Active", "X-License-Class", "X-License-Entitlements"}
)

// ForwardAll is the default set: every header but X-License-Entitlements.
const ForwardAll = ForwardSet(1<<(len(forwardNames)-1) - 1)

// ForwardEntitlements is X-License-Entitlements' bit: a gate that forwards
// it lists each installation's entitlements (gateway.WithEntitlementList).
const ForwardEntitlements = ForwardSet(1 << (len(forwardNames) - 1))

// ParseForward reads the forward option's names (none: all).
func ParseForward(names []string) (ForwardSet, error) {
	if len(names) == 0 {
		return ForwardAll, nil
	}
	var set ForwardSet
	for _, n := range names {
		i := slices.Index(forwardNames[:], n)
		if i < 0 {
			return 0, fmt.Errorf("%q is not one of %s", n, strings.Join(forwardNames[:], ", "))
		}
		set |= 1 << i
	}
	return set, nil
}

// Forward replaces the credentials in h with the licence facts, as the
// headers in set (none chosen: all), and returns the facts for the
// {license.*} placeholders. It makes two allocations: the grant's values
// (one copy for the headers' value slices, one for the placeholders) and
// the placeholder provider.
func Forward(h http.Header, grant *gateway.Grant, set ForwardSet) *GrantVars {
	if set == 0 {
		set = ForwardAll
	}
	delete(h, "Authorization") // net/http canonicalised the client's spelling
	StripLicenseHeaders(h)
	v := &GrantVars{license: grant.LicenseID, stale: grant.Stale}
	v.values = [len(forwardNames)]string{grant.InstallationID, grant.Product, grant.Domain, grant.Type,
		strconv.FormatBool(grant.SupportActive), grant.Class, grant.Entitlements}
	v.headers = v.values
	for i := range v.headers {
		if set&(1<<i) != 0 {
			h[ForwardHeaders[i]] = v.headers[i : i+1 : i+1]
		}
	}
	return v
}

// GrantVars serves an admitted request's {license.*} placeholders, each
// made when read: one provider instead of eight writes to the replacer's
// locked map and eight allocations on every request, when most requests
// have no later handler that reads any. (The gate removes the bearer
// token, so no second gate on the same request admits it and adds its
// own.)
type GrantVars struct {
	values [len(forwardNames)]string // in forwardNames' order
	// headers backs the forwarded headers' values: a copy, so a later
	// handler that rewrites a header in place (request_header) leaves the
	// placeholders the licence's facts.
	headers [len(forwardNames)]string
	license string
	stale   bool
}

// Placeholder serves {license.<name>}, as caddy.Replacer.Map asks.
func (v *GrantVars) Placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "license.")
	if !ok {
		return nil, false
	}
	switch name {
	case "id":
		return v.license, true
	case "stale": // served while the store was unreachable
		return strconv.FormatBool(v.stale), true
	}
	if i := slices.Index(forwardNames[:], name); i >= 0 {
		return v.values[i], true
	}
	return nil, false
}

// RateLimitPolicy is the RateLimit-Policy field of a quota
// (draft-ietf-httpapi-ratelimit-headers): its limit and window length in
// seconds.
func RateLimitPolicy(q gateway.Quota) string {
	return `"quota";q=` + strconv.FormatInt(q.Limit, 10) + ";w=" + strconv.FormatInt(int64(q.Period/time.Second), 10)
}

// RateLimitFields sets the RateLimit-Policy field (policy, made once by
// RateLimitPolicy) and the RateLimit field: the requests left and the
// seconds until the window ends.
func RateLimitFields(h http.Header, policy string, q *gateway.QuotaState) {
	reset := int64((q.Reset + time.Second - 1) / time.Second)
	var buf [64]byte
	b := append(buf[:0], `"quota";r=`...)
	b = strconv.AppendInt(b, q.Remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, reset, 10)
	vals := make([]string, 2) // one allocation for both fields' slices
	vals[0], vals[1] = policy, string(b)
	h["Ratelimit-Policy"] = vals[0:1:1]
	h["Ratelimit"] = vals[1:2:2]
}

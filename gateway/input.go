package gateway

import "github.com/licensegate/licensegate/policy"

// Field limits for installer input.
const (
	maxDomainLength = 2048 // before normalisation: a pasted URL
	maxLabelLength  = 64
	maxIPLength     = 45 // the longest IPv6 text form, an IPv4 tail included
)

// domainField normalises an installer's domain field, or says what is
// wrong with it. Activation and move both take a domain through it, so
// both refuse the same input the same way.
func domainField(raw string) (domain, problem string) {
	switch {
	case raw == "":
		return "", "is required"
	case len(raw) > maxDomainLength:
		return "", "is too long"
	}
	d, err := policy.NormalizeDomain(raw)
	if err != nil {
		return "", err.Error()
	}
	return d, ""
}

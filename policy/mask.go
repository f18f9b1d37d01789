package policy

import "strings"

// MaskDomain hides most of a domain so a buyer recognises their own
// installation ("b***r.com" for buyer.com) without an activation_limit
// answer telling whoever holds a leaked code which domain to claim. Every
// label but the last keeps only its first and last character; the last
// (the TLD, or an IP address's final group) is kept whole.
func MaskDomain(domain string) string {
	sep := "."
	if strings.Contains(domain, ":") { // IPv6 literal
		sep = ":"
	}
	labels := strings.Split(domain, sep)
	for i := range len(labels) - 1 {
		labels[i] = maskLabel(labels[i])
	}
	return strings.Join(labels, sep)
}

func maskLabel(l string) string {
	switch len(l) {
	case 0:
		return l
	case 1, 2:
		return l[:1] + "*"
	default:
		return l[:1] + "***" + l[len(l)-1:]
	}
}

package policy

import (
	"net/netip"
	"strconv"
	"strings"
)

// MaskDomain hides most of a domain so a buyer recognises their own
// installation ("b***r.com" for buyer.com) without an activation_limit
// answer telling whoever holds a leaked code which domain to claim. Every
// label but the last keeps only its first and last character; the last
// (the TLD) is kept whole. A local install (localhost, loopback, *.test,
// ...) reveals nothing worth hiding and is shown as it is; a public IP
// address keeps its first and last group ("203.*.*.7").
func MaskDomain(domain string) string {
	if IsLocal(domain) {
		return domain
	}
	if addr, err := netip.ParseAddr(domain); err == nil {
		return maskAddr(addr)
	}
	labels := strings.Split(domain, ".")
	for i := range len(labels) - 1 {
		labels[i] = maskLabel(labels[i])
	}
	return strings.Join(labels, ".")
}

// maskAddr keeps an address's first and last group: 203.*.*.7, and
// 2001:*:7 for IPv6 (however many groups lie between).
func maskAddr(addr netip.Addr) string {
	addr = addr.WithZone("")
	if addr.Is4() || addr.Is4In6() {
		b := addr.Unmap().As4()
		return strconv.Itoa(int(b[0])) + ".*.*." + strconv.Itoa(int(b[3]))
	}
	b := addr.As16()
	first := uint64(b[0])<<8 | uint64(b[1])
	last := uint64(b[14])<<8 | uint64(b[15])
	return strconv.FormatUint(first, 16) + ":*:" + strconv.FormatUint(last, 16)
}

// MaskLabel hides, in an installation's label, each part of its domain
// that MaskDomain hides ("Main shop (acme)" for acme.com shows "a***e"):
// an installer may have put the site's name in the label, and the 409
// must not confirm the buyer's domain through it (issue 20, L2).
func MaskLabel(label, domain string) string {
	if IsLocal(domain) || label == "" {
		return label
	}
	if _, err := netip.ParseAddr(domain); err == nil {
		return strings.ReplaceAll(label, domain, MaskDomain(domain))
	}
	parts := strings.Split(domain, ".")
	for _, p := range parts[:len(parts)-1] {
		if len(p) < 3 {
			continue
		}
		label = replaceFold(label, p, maskLabel(p))
	}
	return label
}

// replaceFold replaces every case-insensitive occurrence of old (ASCII)
// in s with new.
func replaceFold(s, old, new string) string {
	lower, target := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) {
		return "" // a case change moved the bytes: show no label rather than an unmasked one
	}
	if !strings.Contains(lower, target) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, target)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(new)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
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

package policy

import "net/netip"

// ClientNetwork is the network a client address counts as for leak
// detection: its IPv4 /24 or IPv6 /48, the blocks one site or one customer
// of a provider is usually given. "" when ip is not an address.
func ClientNetwork(ip string) string {
	return prefix(ip, 24, 48)
}

// RateKey is the key a per-client-IP limit counts a client address under:
// the IPv4 address itself, or its IPv6 /64 (one host routinely holds a
// whole /64, so per-address buckets would be unlimited).
func RateKey(ip string) string {
	if k := prefix(ip, 32, 64); k != "" {
		return k
	}
	return ip
}

func prefix(ip string, v4bits, v6bits int) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	bits := v6bits
	if addr.Is4() {
		bits = v4bits
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

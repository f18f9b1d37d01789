package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// InstallClass is how an installation's domain counts against a licence.
type InstallClass string

// Install classes.
const (
	ClassProduction InstallClass = "production"
	ClassLocal      InstallClass = "local"
	ClassStaging    InstallClass = "staging"
)

// ErrInvalidDomain wraps every NormalizeDomain failure; the message after it
// is buyer-safe (it never echoes the input back).
var ErrInvalidDomain = errors.New("invalid domain")

const (
	maxDomainLen = 253 // RFC 1035 limit on a name in presentation form, without the root dot
	maxLabelLen  = 63

	// maxRawHostLen bounds the host handed to IDNA so hostile input cannot
	// make us do unbounded work. A legitimate host converts to at most 253
	// ASCII characters and every rune costs at most 4 UTF-8 bytes, so 1024
	// never rejects a real name.
	maxRawHostLen = 1024
)

// lookup is the strict IDNA profile: UTS #46 mapping for lookup (case
// folding, full-width dots), STD3 ASCII rules, hyphen/joiner checks and the
// Bidi rule.
var lookup = idna.Lookup

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidDomain, reason)
}

// NormalizeDomain reduces what an installer sends as its domain to the
// canonical host that identifies an installation.
//
// It accepts a bare host ("Example.com"), a host with port and path
// ("example.com:8080/sub/dir") or an http(s) URL
// ("https://Example.com:8443/shop/?x=1") and returns the lower-case,
// punycode host without port, trailing dot or leading "www.". IP literals
// are returned in their canonical netip form (IPv6 without brackets).
func NormalizeDomain(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", invalid("domain is empty")
	}
	if err := checkRunes(s); err != nil {
		return "", err
	}
	authority, err := authorityOf(s)
	if err != nil {
		return "", err
	}
	if authority == "" {
		return "", invalid("domain is empty")
	}
	if strings.Contains(authority, "@") {
		return "", invalid("domain must not contain a user name or password")
	}
	host, isIPv6, err := splitHostPort(authority)
	if err != nil {
		return "", err
	}
	if isIPv6 {
		return normalizeIPv6(host)
	}
	return normalizeName(host)
}

// checkRunes rejects invalid UTF-8 and control characters (including NUL)
// anywhere in the input, path included: they are never legitimate and are a
// classic way to smuggle different hosts past different parsers.
func checkRunes(s string) error {
	if !utf8.ValidString(s) {
		return invalid("domain is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid("domain contains control characters")
		}
	}
	return nil
}

// authorityOf strips an optional http(s) scheme and any path, query or
// fragment, returning the "host[:port]" part (userinfo still included).
func authorityOf(s string) (string, error) {
	rest := s
	if i := strings.Index(s, "://"); i >= 0 && !strings.ContainsAny(s[:i], "/?#") {
		switch strings.ToLower(s[:i]) {
		case "http", "https":
			rest = s[i+len("://"):]
		default:
			return "", invalid("only http and https URLs are accepted")
		}
	} else if strings.HasPrefix(s, "//") {
		// Scheme-relative URL ("//example.com/x"): unambiguous, so allow it.
		rest = s[2:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest, nil
}

// splitHostPort separates host from an optional port. Bracketed hosts must
// be IPv6; an unbracketed host with more than one colon is taken to be a
// bare IPv6 literal (which cannot carry a port unambiguously).
func splitHostPort(authority string) (host string, isIPv6 bool, err error) {
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", false, invalid("unterminated IPv6 address")
		}
		if err := checkPort(authority[end+1:]); err != nil {
			return "", false, err
		}
		return authority[1:end], true, nil
	}
	switch strings.Count(authority, ":") {
	case 0:
		return authority, false, nil
	case 1:
		i := strings.IndexByte(authority, ':')
		if err := checkPort(authority[i:]); err != nil {
			return "", false, err
		}
		return authority[:i], false, nil
	default:
		return authority, true, nil
	}
}

// checkPort validates what follows a host: nothing, or ":" and an optional
// decimal port number up to 65535. The port itself is discarded.
func checkPort(s string) error {
	if s == "" {
		return nil
	}
	if s[0] != ':' {
		return invalid("unexpected characters after the host")
	}
	port := s[1:]
	if len(port) > 5 {
		return invalid("invalid port")
	}
	n := 0
	for _, c := range []byte(port) {
		if c < '0' || c > '9' {
			return invalid("invalid port")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return invalid("invalid port")
	}
	return nil
}

// normalizeIPv6 canonicalises an IPv6 literal. IPv4-mapped addresses are
// unmapped so "::ffff:127.0.0.1" and "127.0.0.1" are the same installation.
func normalizeIPv6(host string) (string, error) {
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is6() {
		return "", invalid("invalid IPv6 address")
	}
	if addr.Zone() != "" {
		return "", invalid("IPv6 zone identifiers are not allowed")
	}
	return addr.Unmap().String(), nil
}

// normalizeName handles everything that is not a bracketed or bare IPv6
// literal: IPv4 literals and (internationalised) host names.
func normalizeName(host string) (string, error) {
	if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		return addr.String(), nil
	}
	if len(host) > maxRawHostLen {
		return "", invalid("domain is longer than 253 characters")
	}
	if strings.Contains(host, "*") {
		return "", invalid("wildcard domains are not allowed")
	}
	// IDNA runs before any label logic because it can create dots (U+3002,
	// full-width '.') and digits, so labels only exist after conversion.
	name, err := lookup.ToASCII(host)
	if err != nil {
		return "", diagnose(host)
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if err := checkLabels(name); err != nil {
		return "", err
	}
	if endsInNumber(name) {
		// "1.2.3", "0x7f.1" or a full-width "１２７.０.０.１": only a real
		// dotted-quad IPv4 address may end in a number.
		addr, err := netip.ParseAddr(name)
		if err != nil || !addr.Is4() {
			return "", invalid("invalid IPv4 address")
		}
		return addr.String(), nil
	}
	name = foldWWW(name)
	if !strings.Contains(name, ".") && name != "localhost" {
		return "", invalid("domain must be a fully qualified name")
	}
	if isPublicSuffix(name) {
		// github.io or co.uk is nobody's site; allowing it would make every
		// site under it a free "staging" subdomain.
		return "", invalid("domain is a public suffix (like co.uk or github.io); give your site's own domain")
	}
	return name, nil
}

// isPublicSuffix reports whether a name is itself a public suffix (ICANN or
// private, per the Public Suffix List) rather than a registrable domain.
func isPublicSuffix(name string) bool {
	if IsLocal(name) {
		return false
	}
	_, err := publicsuffix.EffectiveTLDPlusOne(name)
	return err != nil
}

// checkLabels enforces DNS syntax on an ASCII name: overall and per-label
// length, no empty labels, LDH characters only, no edge hyphens. IDNA
// already checks most of this; doing it again here is what the output
// invariants rest on, and gives precise messages.
func checkLabels(name string) error {
	if name == "" {
		return invalid("domain is empty")
	}
	if len(name) > maxDomainLen {
		return invalid("domain is longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return invalid("domain contains an empty label (consecutive or leading dots)")
	case len(label) > maxLabelLen:
		return invalid("a domain label is longer than 63 characters")
	case label[0] == '-' || label[len(label)-1] == '-':
		return invalid("a domain label must not start or end with a hyphen")
	}
	for _, c := range []byte(label) {
		if !isLDH(c) {
			return invalid("domain contains characters not allowed in a hostname")
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isLDH(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
}

// diagnose turns an IDNA failure into a buyer-safe reason. The idna error
// itself quotes the input, so it is never surfaced.
func diagnose(host string) error {
	switch {
	case strings.Contains(host, "_"):
		return invalid("underscores are not allowed in a domain")
	case strings.Contains(host, " "):
		return invalid("domain must not contain spaces")
	case !isASCII(host):
		return invalid("domain is not a valid internationalised domain name")
	}
	if err := checkLabels(strings.TrimSuffix(strings.ToLower(host), ".")); err != nil {
		return err
	}
	// Valid LDH syntax that IDNA still refused: "ab--cd" or a bad "xn--" label.
	return invalid("domain contains an invalid label")
}

// endsInNumber reports whether the last label is a decimal or 0x-hex number,
// which WHATWG URL parsers would read as (part of) an IPv4 address.
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// foldWWW strips leading "www." labels while at least two labels remain, so
// "www.acme.com" is "acme.com" but "www.com" stays. It loops so that the
// result is a fixed point ("www.www.acme.com" -> "acme.com"), keeping
// NormalizeDomain idempotent.
func foldWWW(name string) string {
	for {
		rest, ok := strings.CutPrefix(name, "www.")
		if !ok || !strings.Contains(rest, ".") {
			return name
		}
		name = rest
	}
}

// localSuffixes are the special-use TLDs (RFC 2606, RFC 6761, RFC 6762)
// that never reach a production site.
var localSuffixes = []string{".test", ".local", ".localhost", ".example", ".invalid"}

// IsLocal reports whether a normalised domain is a local/dev install:
// localhost, a loopback address (127.0.0.0/8 or ::1) or a name under a
// special-use TLD. Private-network addresses are deliberately not local.
// The argument must come from NormalizeDomain; anything else may be
// misclassified as production, which is the conservative direction.
func IsLocal(domain string) bool {
	if domain == "localhost" {
		return true
	}
	if addr, err := netip.ParseAddr(domain); err == nil {
		return addr.Zone() == "" && addr.Unmap().IsLoopback()
	}
	for _, suffix := range localSuffixes {
		if strings.HasSuffix(domain, suffix) {
			return true
		}
	}
	return false
}

// IsSubdomainOf reports whether domain is a strict subdomain of parent (both
// normalised). IP addresses have no subdomains.
func IsSubdomainOf(domain, parent string) bool {
	if parent == "" || len(domain) <= len(parent)+1 {
		return false
	}
	if _, err := netip.ParseAddr(parent); err == nil {
		return false
	}
	return strings.HasSuffix(domain, "."+parent)
}

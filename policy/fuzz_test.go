package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func FuzzNormalizeDomain(f *testing.F) {
	for _, seed := range []string{
		"",
		"acme.com",
		"ACME.COM",
		"www.acme.com",
		"www.www.com",
		"https://Example.com:8443/shop/?x=1",
		"example.com:8080/sub/dir",
		"acme.com.",
		"Bücher.example",
		"😀.com",
		"１２７.０.０.１",
		"127.0.0.1",
		"[::1]:8080",
		"::ffff:10.0.0.1",
		"[fe80::1%25eth0]",
		"user@acme.com",
		"a..b",
		"my_shop.com",
		"*.acme.com",
		"ftp://acme.com",
		"intranet",
		"localhost:3000",
		"acme.com\x00",
		"0x7f.1",
		"xn--a.com",
		"acme.com\u3002",
		strings.Repeat("a", 64) + ".com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := NormalizeDomain(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidDomain) {
				t.Fatalf("NormalizeDomain(%q) error %v does not wrap ErrInvalidDomain", raw, err)
			}
			if out != "" {
				t.Fatalf("NormalizeDomain(%q) returned %q with error", raw, out)
			}
			return
		}
		checkNormalized(t, raw, out)
	})
}

// checkNormalized asserts the invariants every successful output holds.
func checkNormalized(t *testing.T, raw, out string) {
	t.Helper()
	again, err := NormalizeDomain(out)
	if err != nil || again != out {
		t.Fatalf("not idempotent: %q -> %q -> %q, %v", raw, out, again, err)
	}
	if out == "" || len(out) > 253 {
		t.Fatalf("NormalizeDomain(%q) = %q: bad length %d", raw, out, len(out))
	}
	if out != strings.ToLower(out) {
		t.Fatalf("NormalizeDomain(%q) = %q: not lower case", raw, out)
	}
	if strings.Contains(out, ":") {
		if addr, err := netip.ParseAddr(out); err != nil || !addr.Is6() {
			t.Fatalf("NormalizeDomain(%q) = %q: colon in a non-IPv6 result", raw, out)
		}
	}
	if strings.ContainsAny(out, "/@*_ []") || strings.HasSuffix(out, ".") {
		t.Fatalf("NormalizeDomain(%q) = %q: forbidden character or trailing dot", raw, out)
	}
}

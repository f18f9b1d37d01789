package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeDomainAccepts(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// Four 63-char labels and dots: 4*63+3 = 255, so trim to exactly 253.
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("a", 61)

	tests := []struct {
		name, in, want string
	}{
		{"plain", "acme.com", "acme.com"},
		{"upper case", "ACME.Com", "acme.com"},
		{"surrounding spaces", "  acme.com \n", "acme.com"},
		{"www folded", "www.acme.com", "acme.com"},
		{"www folded repeatedly", "www.www.acme.com", "acme.com"},
		{"www bare TLD kept", "www.com", "www.com"},
		{"www only one level folded to keep two labels", "www.www.com", "www.com"},
		{"www not a prefix label", "wwwacme.com", "wwwacme.com"},
		{"www inside kept", "shop.www.acme.com", "shop.www.acme.com"},
		{"port", "acme.com:8080", "acme.com"},
		{"empty port", "acme.com:", "acme.com"},
		{"bare host path", "example.com:8080/sub/dir", "example.com"},
		{"https URL", "https://Example.com:8443/shop/?x=1", "example.com"},
		{"http URL", "http://acme.com", "acme.com"},
		{"upper-case scheme", "HTTPS://ACME.COM/", "acme.com"},
		{"scheme-relative", "//acme.com/x", "acme.com"},
		{"query only", "acme.com?x=1", "acme.com"},
		{"fragment only", "acme.com#top", "acme.com"},
		{"path with spaces is discarded", "acme.com/my shop", "acme.com"},
		{"trailing dot", "acme.com.", "acme.com"},
		{"trailing dot with port", "acme.com.:443", "acme.com"},
		{"ideographic full stop", "acme.com\u3002", "acme.com"},
		{"subdomain kept", "Shop.Acme.com", "shop.acme.com"},
		{"hyphen inside", "my-shop.co.uk", "my-shop.co.uk"},
		{"digits in labels", "123.4u.com", "123.4u.com"},
		{"IDNA", "Bücher.example", "xn--bcher-kva.example"},
		{"IDNA in URL", "https://www.Bücher.example:443/", "xn--bcher-kva.example"},
		{"punycode passthrough", "XN--BCHER-KVA.example", "xn--bcher-kva.example"},
		{"IDNA eszett non-transitional", "faß.de", "xn--fa-hia.de"},
		{"full-width www folded after IDNA", "ｗｗｗ.acme.com", "acme.com"},
		{"soft hyphen mapped away", "ac\u00adme.com", "acme.com"},
		// UTS #46 lookup (what browsers do) accepts symbol and emoji
		// labels; we accept what resolves in a browser.
		{"emoji accepted by IDNA lookup", "😀.com", "xn--e28h.com"},
		{"symbol accepted by IDNA lookup", "i❤.ws", "xn--i-7iq.ws"},
		{"localhost", "localhost", "localhost"},
		{"localhost upper with port", "LOCALHOST:3000", "localhost"},
		{"localhost trailing dot", "localhost.", "localhost"},
		{"localhost URL", "http://localhost:8080/wp", "localhost"},
		{"IPv4", "127.0.0.1", "127.0.0.1"},
		{"IPv4 with port", "192.168.1.10:8080", "192.168.1.10"},
		{"IPv4 URL", "http://10.0.0.1/shop", "10.0.0.1"},
		{"IPv4 trailing dot", "127.0.0.1.", "127.0.0.1"},
		{"IPv4 full-width digits", "１２７.０.０.１", "127.0.0.1"},
		{"IPv6 brackets and port", "[::1]:8080", "::1"},
		{"IPv6 brackets", "[::1]", "::1"},
		{"IPv6 bare", "::1", "::1"},
		{"IPv6 canonicalised", "[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"},
		{"IPv6 URL", "https://[2001:db8::1]:8443/x", "2001:db8::1"},
		{"IPv4-mapped IPv6 unmapped", "[::ffff:127.0.0.1]", "127.0.0.1"},
		{"label of 63", label63 + ".com", label63 + ".com"},
		{"name of 253", name253, name253},
		{"combined www port path upper case", "HTTPS://WWW.ACME.COM:8443/Shop/?X=1#y", "acme.com"},
		{"combined without scheme", "Www.Acme.Com.:80/path", "acme.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeDomain(tt.in)
			if err != nil {
				t.Fatalf("NormalizeDomain(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("NormalizeDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := NormalizeDomain(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: NormalizeDomain(%q) = %q, %v", got, again, err)
			}
		})
	}
}

func TestNormalizeDomainRejects(t *testing.T) {
	label64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("a", 63)
	name254 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("a", 62)

	tests := []struct {
		name, in, reason string
	}{
		{"empty", "", "empty"},
		{"public suffix (private)", "github.io", "public suffix"},
		{"public suffix (ICANN)", "https://www.co.uk/", "public suffix"},
		{"public suffix, deeper", "s3.amazonaws.com", "public suffix"},
		{"only spaces", "   ", "empty"},
		{"scheme without host", "https://", "empty"},
		{"scheme with path only", "https:///path", "empty"},
		{"only a dot", ".", "empty"},
		{"too long", name254, "longer than 253"},
		{"too long raw", strings.Repeat("a.", 600) + "com", "longer than 253"},
		{"label too long", label64 + ".com", "longer than 63"},
		{"empty label", "a..b", "empty label"},
		{"leading dot", ".acme.com", "empty label"},
		{"two trailing dots", "acme.com..", "empty label"},
		{"userinfo", "user@acme.com", "user name"},
		{"userinfo with password in URL", "https://user:pw@acme.com/", "user name"},
		{"backslash userinfo confusion", "https://acme.com\\@evil.com", "user name"},
		{"underscore", "my_shop.acme.com", "underscore"},
		{"space in host", "acme .com", "spaces"},
		{"wildcard", "*.acme.com", "wildcard"},
		{"ftp scheme", "ftp://acme.com", "http and https"},
		{"file scheme", "file:///etc/passwd", "http and https"},
		{"javascript scheme", "javascript:alert(1)", "port"},
		{"single label", "intranet", "fully qualified"},
		{"single label with port", "intranet:8080", "fully qualified"},
		{"bare www", "www", "fully qualified"},
		{"NUL", "acme.com\x00.evil.com", "control"},
		{"control in path", "acme.com/\x07", "control"},
		{"newline inside", "acme.com\nevil.com", "control"},
		{"invalid UTF-8", "acme\xff.com", "UTF-8"},
		{"non-numeric port", "acme.com:http", "port"},
		{"port out of range", "acme.com:65536", "port"},
		{"port too long", "acme.com:000080", "port"},
		{"leading hyphen", "-acme.com", "hyphen"},
		{"trailing hyphen", "acme-.com", "hyphen"},
		{"reserved hyphens", "ab--cd.com", "invalid label"},
		{"bad punycode", "xn--a.com", "invalid label"},
		{"percent encoding", "acme%2ecom", "not allowed"},
		{"emoji ZWJ rejected by IDNA", "\u200d.com", "internationalised"},
		{"bidi override", "acme\u202e.com", "internationalised"},
		{"numeric TLD", "1.2.3", "IPv4"},
		{"IPv4 with leading zeros", "127.000.000.001", "IPv4"},
		{"IPv4 out of range", "256.0.0.1", "IPv4"},
		{"hex IPv4 form", "0x7f.1", "IPv4"},
		{"IPv4 in brackets", "[127.0.0.1]", "IPv6"},
		{"unterminated IPv6", "[::1", "unterminated"},
		{"junk after IPv6", "[::1]x", "after the host"},
		{"bad IPv6", "[::g]", "IPv6"},
		{"bare IPv6 with port is ambiguous garbage", "1:2:3:4:5:6:7:8:80", "IPv6"},
		{"IPv6 zone", "[fe80::1%25eth0]", "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeDomain(tt.in)
			if err == nil {
				t.Fatalf("NormalizeDomain(%q) = %q, want error containing %q", tt.in, got, tt.reason)
			}
			if !errors.Is(err, ErrInvalidDomain) {
				t.Fatalf("NormalizeDomain(%q) error %v does not wrap ErrInvalidDomain", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("NormalizeDomain(%q) error %q, want it to mention %q", tt.in, err, tt.reason)
			}
		})
	}
}

// TestNormalizeDomainErrorsDoNotEchoInput keeps error messages buyer-safe:
// they must never reflect attacker-chosen input back.
func TestNormalizeDomainErrorsDoNotEchoInput(t *testing.T) {
	for _, in := range []string{"<script>x</script>.com", "xn--zzzz-evil.com", "evil_marker.com", "ftp://evilmarker.com"} {
		_, err := NormalizeDomain(in)
		if err == nil {
			t.Fatalf("NormalizeDomain(%q) succeeded, want error", in)
		}
		msg := err.Error()
		if strings.Contains(msg, "evil") || strings.Contains(msg, "script") || strings.Contains(msg, "zzzz") {
			t.Fatalf("error %q echoes input %q", msg, in)
		}
	}
}

func TestIsLocal(t *testing.T) {
	tests := []struct {
		domain string
		want   bool
	}{
		{"localhost", true},
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"shop.test", true},
		{"printer.local", true},
		{"app.localhost", true},
		{"a.b.example", true},
		{"nothing.invalid", true},
		{"acme.com", false},
		{"testacme.com", false},
		{"acme.test.com", false},
		{"notlocalhost", false},
		{"mylocal", false},
		{"128.0.0.1", false},
		{"10.0.0.1", false},    // private, deliberately not local
		{"192.168.1.1", false}, // private, deliberately not local
		{"::2", false},
		{"fe80::1", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsLocal(tt.domain); got != tt.want {
			t.Errorf("IsLocal(%q) = %v, want %v", tt.domain, got, tt.want)
		}
	}
}

func TestIsSubdomainOf(t *testing.T) {
	tests := []struct {
		domain, parent string
		want           bool
	}{
		{"shop.acme.com", "acme.com", true},
		{"a.b.acme.com", "acme.com", true},
		{"dev.localhost", "localhost", true},
		{"acme.com", "acme.com", false},
		{"evilacme.com", "acme.com", false},
		{"acme.com", "shop.acme.com", false},
		{"acme.com.evil.com", "acme.com", false},
		{".acme.com", "acme.com", false},
		{"acme.com", "", false},
		{"", "", false},
		{"1.127.0.0.1", "127.0.0.1", false},
	}
	for _, tt := range tests {
		if got := IsSubdomainOf(tt.domain, tt.parent); got != tt.want {
			t.Errorf("IsSubdomainOf(%q, %q) = %v, want %v", tt.domain, tt.parent, got, tt.want)
		}
	}
}

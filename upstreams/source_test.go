package upstreams

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestCleanKey checks a source's default key check, CleanKeyWithin with
// MaxKeyLength; TestCleanKeyFront the gateway's, CleanKey.
func TestCleanKey(t *testing.T) {
	uuid := "4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d"
	tests := []struct {
		name    string
		in      string
		want    string
		wantMsg string // substring of the error; "" when accepted
	}{
		{"plain", uuid, uuid, ""},
		{"case kept", "ABC-def", "ABC-def", ""},
		{"punctuation", "CP-AAAA_bbbb.cc~dd!#$%&'()*+,/:;<=>?@[]^`{|}", "CP-AAAA_bbbb.cc~dd!#$%&'()*+,/:;<=>?@[]^`{|}", ""},
		{"spaces around", "  " + uuid + "  ", uuid, ""},
		{"tabs and newlines", "\t" + uuid + "\r\n", uuid, ""},
		{"NBSP", "\u00a0" + uuid + "\u00a0", uuid, ""},
		{"zero-width space", "\u200b" + uuid + "\u200b", uuid, ""},
		{"zero-width joiners", "\u200c\u200d" + uuid + "\u2060", uuid, ""},
		{"BOM", "\ufeff" + uuid, uuid, ""},
		{"ideographic space", "\u3000" + uuid + "\u3000", uuid, ""},
		{"mixed junk", " \ufeff\u00a0\u200b\t" + uuid + "\u200b \n", uuid, ""},
		{"one character", "x", "x", ""},
		{"exactly 256", strings.Repeat("k", 256), strings.Repeat("k", 256), ""},
		{"256 after trimming", "  " + strings.Repeat("k", 256) + "  ", strings.Repeat("k", 256), ""},

		{"empty", "", "", "empty"},
		{"only spaces", "   \t\n", "", "empty"},
		{"only invisible", "\u200b\ufeff\u00a0", "", "empty"},
		{"257", strings.Repeat("k", 257), "", "longer than 256"},
		{"huge", strings.Repeat("k", 100000), "", "longer than 256"},
		{"inner space", "4f1e7a8c 0c7b", "", "spaces or control"},
		{"inner tab", "4f1e7a8c\t0c7b", "", "spaces or control"},
		{"NUL", "abc\x00def", "", "spaces or control"},
		{"DEL", "abc\x7fdef", "", "spaces or control"},
		{"escape", "abc\x1b[31m", "", "spaces or control"},
		{"inner NBSP", "4f1e7a8c\u00a00c7b", "", "non-ASCII"},
		{"inner zero-width space", "4f1e\u200b7a8c", "", "non-ASCII"},
		{"en dash", "4f1e7a8c\u20130c7b", "", "non-ASCII"},
		{"em dash", "4f1e7a8c\u20140c7b", "", "non-ASCII"},
		{"minus sign", "4f1e7a8c\u22120c7b", "", "non-ASCII"},
		{"non-breaking hyphen", "4f1e7a8c\u20110c7b", "", "non-ASCII"},
		{"Cyrillic a", "4f1e7\u04308c", "", "non-ASCII"},
		{"Greek omicron", "CP-\u03bf000", "", "non-ASCII"},
		{"full-width digit", "\uff11234", "", "non-ASCII"},
		{"invalid UTF-8", "abc\xffdef", "", "non-ASCII"},
		{"trailing invalid UTF-8", uuid + "\xc3", "", "non-ASCII"},
		{"latin-1 letter", "caf\u00e9", "", "non-ASCII"},
		{"emoji", "key\U0001F511", "", "non-ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanKeyWithin(tt.in, MaxKeyLength)
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("CleanKeyWithin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("CleanKey(%q) = %q, %v; want ErrKeyFormat", tt.in, got, err)
			}
			if got != "" {
				t.Fatalf("CleanKey returned %q with an error", got)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not mention %q", err, tt.wantMsg)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error echoes too much of the input: %d bytes", len(err.Error()))
			}
		})
	}
}

// TestCleanKeyFront: the gateway's check lets through the longest key a
// source may declare (a Keygen signed key) and refuses the rest as
// CleanKeyWithin does.
func TestCleanKeyFront(t *testing.T) {
	long := "key/" + strings.Repeat("eyJhIjoiYiJ9", 60) + "." + strings.Repeat("c2ln", 20) // some 800 characters
	for _, ok := range []string{long, " " + long + "\n", strings.Repeat("k", MaxAnyKeyLength)} {
		if got, err := CleanKey(ok); err != nil || got != strings.TrimSpace(ok) {
			t.Errorf("CleanKey(%d characters) = %v", len(ok), err)
		}
	}
	for in, msg := range map[string]string{
		strings.Repeat("k", MaxAnyKeyLength+1): "longer than 16384",
		strings.Repeat("k", 1<<20):             "longer than 16384",
		long + "\u2013":                        "non-ASCII",
		"":                                     "empty",
	} {
		if _, err := CleanKey(in); !errors.Is(err, ErrKeyFormat) || !strings.Contains(err.Error(), msg) {
			t.Errorf("CleanKey(%d characters) = %v, want a refusal mentioning %q", len(in), err, msg)
		}
	}
	if _, err := CleanKeyWithin(long, MaxKeyLength); err == nil {
		t.Error("a source with the default bound accepted an 800-character key")
	}
	if _, err := CleanKeyWithin(strings.Repeat("k", MaxAnyKeyLength+1), 1<<20); err == nil {
		t.Error("a bound above MaxAnyKeyLength was not capped")
	}
}

func TestTypeName(t *testing.T) {
	for in, want := range map[string]string{
		"":                 DefaultType,
		"  ":               DefaultType,
		"Default":          DefaultType,
		"Regular License":  "regular",
		"Extended Licence": "extended",
		"Team Plan":        "team-plan",
		"Pro":              "pro",
		"License":          "license",
	} {
		if got := TypeName(in); got != want {
			t.Errorf("TypeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerdicts(t *testing.T) {
	r := Record{Product: "p"}
	if v := ValidVerdict(r); v.Outcome != Valid || !reflect.DeepEqual(v.Record, r) || v.Outcome.String() != "valid" {
		t.Errorf("ValidVerdict = %+v", v)
	}
	if v := InvalidVerdict(Revoked); v.Outcome != Invalid || v.Reason != Revoked || v.Outcome.String() != "invalid" {
		t.Errorf("InvalidVerdict = %+v", v)
	}
	cause := errors.New("timeout")
	if v := UnknownVerdict(cause); v.Outcome != Unknown || v.Cause != cause || v.Outcome.String() != "unknown" {
		t.Errorf("UnknownVerdict = %+v", v)
	}
	var zero Verdict
	if zero.Outcome != Unknown {
		t.Error("the zero Verdict is not Unknown: a forgotten answer could change a licence")
	}
}

func TestRecoverVerdict(t *testing.T) {
	verify := func() (v Verdict) {
		defer RecoverVerdict("envato", &v)
		var m map[string]int
		m["boom"]++
		return ValidVerdict(Record{Product: "p"})
	}
	v := verify()
	if v.Outcome != Unknown || v.Cause == nil || !strings.Contains(v.Cause.Error(), "envato: internal error") {
		t.Fatalf("verdict %+v, want Unknown naming the source", v)
	}
	calm := func() (v Verdict) {
		defer RecoverVerdict("envato", &v)
		return InvalidVerdict(NotFound)
	}
	if v := calm(); v.Outcome != Invalid || v.Reason != NotFound {
		t.Fatalf("verdict %+v changed without a panic", v)
	}
}

// uuidSource is a Source with UUID keys, for Prepare.
type uuidSource struct{}

func (uuidSource) Name() string                            { return "uuids" }
func (uuidSource) CanonicalKey(key string) (string, error) { return UUIDKey(key) }
func (uuidSource) Verify(context.Context, Request) Verdict { return Verdict{} }

func TestPrepare(t *testing.T) {
	const key = "4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d"
	unmapped := errors.New("no item is configured for the product")
	m := ProductMap{{"a", "1"}, {"b", "2"}, {"a", "3"}}
	got, k, err := Prepare(uuidSource{}, m, Request{Key: " " + strings.ToUpper(key), Product: "a"}, unmapped)
	if err != nil || k != key || len(got) != 2 || got[1].VendorID != "3" {
		t.Fatalf("Prepare = %v, %q, %v", got, k, err)
	}
	if got, _, err := Prepare(uuidSource{}, m, Request{Key: key}, unmapped); err != nil || len(got) != 3 {
		t.Errorf("no product named: %v, %v; want every mapping", got, err)
	}
	if got, _, err := Prepare(uuidSource{}, nil, Request{Key: key}, unmapped); err != nil || len(got) != 0 {
		t.Errorf("no product named, none mapped: %v, %v; want no mappings and no error", got, err)
	}
	if _, _, err := Prepare(uuidSource{}, m, Request{Key: key, Product: "c"}, unmapped); !errors.Is(err, unmapped) || err.Error() != `uuids: no item is configured for the product "c"` {
		t.Errorf("unmapped product: %v", err)
	}
	_, _, err = Prepare(uuidSource{}, m, Request{Key: "not-" + key, Product: "a"}, unmapped)
	if !errors.Is(err, ErrKeyFormat) || !strings.HasPrefix(err.Error(), "uuids: ") || strings.Contains(err.Error(), key) {
		t.Errorf("refused key: %v", err)
	}
}

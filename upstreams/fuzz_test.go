package upstreams

import (
	"errors"
	"strings"
	"testing"
)

func FuzzCleanKey(f *testing.F) {
	for _, seed := range []string{
		"",
		" ",
		"4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d",
		"  4F1E7A8C-0C7B-4B8E-9B0E-2A7F3F5F1C2D\n",
		"\ufeff\u200bkey\u00a0",
		"CP-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
		"0123ABCD-4567EF01-89ABCDEF-01234567",
		"4f1e7a8c\u20130c7b",
		"4f1e7\u0430\u0430c",
		"in ner",
		"abc\x00",
		"\x7f",
		"\xff\xfe",
		"\u200b",
		strings.Repeat("k", 256),
		strings.Repeat("k", 257),
		" " + strings.Repeat("k", 256) + "\u3000",
		"key\U0001F511",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if front, err := CleanKey(raw); err == nil && len(front) > MaxAnyKeyLength {
			t.Fatalf("CleanKey(%q) returned %d bytes, more than %d", raw, len(front), MaxAnyKeyLength)
		}
		key, err := CleanKeyWithin(raw, MaxKeyLength)
		if err != nil {
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("CleanKey(%q) error %v does not wrap ErrKeyFormat", raw, err)
			}
			if key != "" {
				t.Fatalf("CleanKey(%q) returned %q with an error", raw, key)
			}
			return
		}
		if key == "" {
			t.Fatalf("CleanKey(%q) accepted an empty key", raw)
		}
		if len(key) > MaxKeyLength {
			t.Fatalf("CleanKeyWithin(%q) returned %d bytes, more than %d", raw, len(key), MaxKeyLength)
		}
		for i := 0; i < len(key); i++ {
			if c := key[i]; c < 0x21 || c > 0x7e {
				t.Fatalf("CleanKey(%q) = %q holds byte %#x, not printable ASCII", raw, key, c)
			}
		}
		if !strings.Contains(raw, key) {
			t.Fatalf("CleanKey(%q) = %q is not a part of its input", raw, key)
		}
		if front, err := CleanKey(raw); err != nil || front != key {
			t.Fatalf("CleanKey(%q) = %q, %v; the default bound accepted %q", raw, front, err, key)
		}
		again, err := CleanKeyWithin(key, MaxKeyLength)
		if err != nil || again != key {
			t.Fatalf("CleanKey(CleanKey(%q)) = %q, %v; want %q", raw, again, err, key)
		}
	})
}

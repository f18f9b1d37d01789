package tokens

import (
	"errors"
	"strings"
	"testing"
)

func TestNewRefresh(t *testing.T) {
	tok, fam := NewRefresh("")
	if !strings.HasPrefix(tok, RefreshPrefix) || len(fam) != 16 {
		t.Fatalf("NewRefresh(\"\") = %q, %q", tok, fam)
	}
	if got, err := RefreshFamily(tok); err != nil || got != fam {
		t.Fatalf("RefreshFamily(%q) = %q, %v; want %q", tok, got, err, fam)
	}
	next, fam2 := NewRefresh(fam)
	if fam2 != fam || next == tok {
		t.Fatalf("NewRefresh(%q) = %q, %q; want a new token in the same family", fam, next, fam2)
	}
	if got, err := RefreshFamily(next); err != nil || got != fam {
		t.Fatalf("RefreshFamily(successor) = %q, %v; want %q", got, err, fam)
	}
	_, famB := NewRefresh("")
	if famB == fam {
		t.Fatal("two new families share an id")
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tok, f := NewRefresh("")
		if seen[tok] {
			t.Fatal("NewRefresh repeated a token")
		}
		seen[tok] = true
		if got, err := RefreshFamily(tok); err != nil || got != f {
			t.Fatalf("RefreshFamily(%q) = %q, %v", tok, got, err)
		}
	}
}

func TestRefreshFamilyMalformed(t *testing.T) {
	valid, fam := NewRefresh("")
	sec := valid[len(RefreshPrefix)+len(fam)+1:]
	if len(sec) != 43 {
		t.Fatalf("secret part is %d characters", len(sec))
	}
	tests := []struct{ name, tok string }{
		{"empty", ""},
		{"prefix only", "rt_"},
		{"no prefix", fam + "." + sec},
		{"other prefix", "at_" + fam + "." + sec},
		{"upper-case prefix", "RT_" + fam + "." + sec},
		{"leading space", " " + valid},
		{"trailing space", valid + " "},
		{"trailing newline", valid + "\n"},
		{"no dot", "rt_" + fam + sec},
		{"family short", "rt_" + fam[1:] + "." + sec},
		{"family long", "rt_" + fam + "A." + sec},
		{"family empty", "rt_." + sec},
		{"family not base64url", "rt_" + fam[:15] + "+." + sec},
		{"family padded", "rt_" + fam[:15] + "=." + sec},
		{"secret short", "rt_" + fam + "." + sec[1:]},
		{"secret long", "rt_" + fam + "." + sec + "A"},
		{"secret empty", "rt_" + fam + "."},
		{"secret standard base64", "rt_" + fam + "." + sec[:42] + "/"},
		{"secret has dot", "rt_" + fam + "." + sec[:42] + "."},
		{"two dots", "rt_" + fam + "." + sec[:21] + "." + sec[22:]},
		{"non-ASCII in secret", "rt_" + fam + "." + sec[:41] + "é"},
		{"an access token", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"},
		{"too long", "rt_" + fam + "." + sec + strings.Repeat("A", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RefreshFamily(tt.tok)
			if !errors.Is(err, ErrMalformedRefresh) {
				t.Fatalf("RefreshFamily(%q) = %q, %v; want ErrMalformedRefresh", tt.tok, got, err)
			}
			if got != "" {
				t.Fatalf("RefreshFamily returned family %q with an error", got)
			}
		})
	}
}

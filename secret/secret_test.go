package secret

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func newMaster(t *testing.T, seed string) *Master {
	t.Helper()
	m, err := New([]byte(strings.Repeat(seed, MinLength)[:MinLength]))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestNewRefusesShortSecrets(t *testing.T) {
	tests := []struct {
		name    string
		secret  []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"one byte", []byte("x"), true},
		{"one short", bytes.Repeat([]byte("a"), MinLength-1), true},
		{"exactly minimum", bytes.Repeat([]byte("a"), MinLength), false},
		{"longer", bytes.Repeat([]byte("a"), 4*MinLength), false},
		{"generated", []byte(Generate()), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.secret)
			if tt.wantErr {
				if err == nil || m != nil {
					t.Fatalf("New(%d bytes) = %v, %v; want nil and an error", len(tt.secret), m, err)
				}
				if !strings.Contains(err.Error(), "at least 32 bytes") {
					t.Errorf("error %q does not say how long the secret must be", err)
				}
				return
			}
			if err != nil || m == nil {
				t.Fatalf("New(%d bytes) = %v, %v; want a Master", len(tt.secret), m, err)
			}
		})
	}
}

func TestGenerateIsUsableAndRandom(t *testing.T) {
	a, b := Generate(), Generate()
	if a == b {
		t.Fatal("Generate returned the same secret twice")
	}
	if len(a) < MinLength {
		t.Fatalf("Generate returned %d characters, shorter than MinLength", len(a))
	}
}

func TestHash(t *testing.T) {
	m := newMaster(t, "k")
	other := newMaster(t, "z")

	if got, again := m.Hash("envato", "code"), m.Hash("envato", "code"); got != again {
		t.Fatalf("Hash is not deterministic: %s != %s", got, again)
	}
	if h := m.Hash("x"); len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("Hash = %q, want 64 lower-case hex characters", h)
	}
	// A second Master over the same secret gives the same ids.
	if m.Hash("a") != newMaster(t, "k").Hash("a") {
		t.Fatal("two Masters over the same secret hash differently")
	}

	different := []struct {
		name string
		a, b []string
	}{
		{"split point moved", []string{"ab", "c"}, []string{"a", "bc"}},
		{"concatenated vs split", []string{"abc"}, []string{"ab", "c"}},
		{"empty part added", []string{"a"}, []string{"a", ""}},
		{"no parts vs one empty", nil, []string{""}},
		{"order", []string{"a", "b"}, []string{"b", "a"}},
		{"separator look-alike", []string{"1:a;", "b"}, []string{"1:a;1:b;"}},
		{"case", []string{"Code"}, []string{"code"}},
		{"source differs", []string{"envato", "k"}, []string{"static", "k"}},
	}
	for _, tt := range different {
		t.Run(tt.name, func(t *testing.T) {
			if m.Hash(tt.a...) == m.Hash(tt.b...) {
				t.Fatalf("Hash(%q) == Hash(%q)", tt.a, tt.b)
			}
		})
	}
	if m.Hash("a", "b") == other.Hash("a", "b") {
		t.Fatal("different secrets give the same hash")
	}
}

func TestSealOpen(t *testing.T) {
	m := newMaster(t, "k")
	other := newMaster(t, "z")
	aad := []byte("signing-key:kid1")

	for _, pt := range [][]byte{{}, []byte("x"), []byte("4f1e7a8c-0c7b-4b8e-9b0e-2a7f3f5f1c2d"), bytes.Repeat([]byte{0, 0xff}, 4096)} {
		sealed := m.Seal(pt, aad)
		if len(pt) > 4 && bytes.Contains(sealed, pt) {
			t.Fatalf("sealed value contains the plaintext")
		}
		got, err := m.Open(sealed, aad)
		if err != nil {
			t.Fatalf("Open(Seal(%d bytes)): %v", len(pt), err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("round trip changed the plaintext")
		}
	}
	if bytes.Equal(m.Seal([]byte("same"), aad), m.Seal([]byte("same"), aad)) {
		t.Fatal("Seal is deterministic: nonce reused")
	}

	sealed := m.Seal([]byte("purchase code"), aad)
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	failures := []struct {
		name   string
		m      *Master
		sealed []byte
		aad    []byte
	}{
		{"wrong aad", m, sealed, []byte("signing-key:kid2")},
		{"nil aad", m, sealed, nil},
		{"tampered nonce", m, flip(0), aad},
		{"tampered ciphertext", m, flip(len(sealed) / 2), aad},
		{"tampered tag", m, flip(len(sealed) - 1), aad},
		{"truncated", m, sealed[:len(sealed)-1], aad},
		{"too short for nonce and tag", m, sealed[:10], aad},
		{"empty", m, nil, aad},
		{"another secret", other, sealed, aad},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Open(tt.sealed, tt.aad)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
			if got != nil {
				t.Fatalf("Open returned plaintext %q with an error", got)
			}
		})
	}
}

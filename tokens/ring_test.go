package tokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatalf("embedded.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func master(t *testing.T, seed string) *secret.Master {
	t.Helper()
	m, err := secret.New([]byte(strings.Repeat(seed, secret.MinLength)[:secret.MinLength]))
	if err != nil {
		t.Fatalf("secret.New: %v", err)
	}
	return m
}

// newRing returns a loaded ring over a fresh embedded store.
func newRing(t *testing.T) (*Ring, *embedded.Store, *clock) {
	t.Helper()
	st := openStore(t)
	clk := newClock()
	r := NewRing(st, master(t, "s"), clk.Now)
	if err := r.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r, st, clk
}

type jwkSet struct {
	Keys []map[string]string `json:"keys"`
}

func parseJWKS(t *testing.T, raw []byte) jwkSet {
	t.Helper()
	var set jwkSet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, raw)
	}
	for _, k := range set.Keys {
		want := map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig"}
		for f, v := range want {
			if k[f] != v {
				t.Errorf("JWK %s: %s = %q, want %q", k["kid"], f, k[f], v)
			}
		}
		x, err := base64.RawURLEncoding.DecodeString(k["x"])
		if err != nil || len(x) != 32 {
			t.Errorf("JWK %s: x is not a base64url Ed25519 public key (%d bytes, %v)", k["kid"], len(x), err)
		}
		if len(k) != 6 {
			t.Errorf("JWK %s has members %v, want exactly kty crv x kid alg use (no private part)", k["kid"], k)
		}
	}
	return set
}

func kids(set jwkSet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k["kid"])
	}
	return out
}

func TestRingLoadCreatesFirstKey(t *testing.T) {
	st := openStore(t)
	clk := newClock()
	r := NewRing(st, master(t, "s"), clk.Now)
	if r.Loaded() {
		t.Fatal("a ring that was never loaded reports Loaded")
	}
	if _, err := NewIssuer(r, "https://api.example.com", time.Hour).Issue(Claims{Subject: "ins_1", License: "lic_1"}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Issue before Load = %v, want ErrNoKey", err)
	}
	if err := r.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !r.Loaded() || r.CurrentKeyID() == "" {
		t.Fatalf("after Load: Loaded=%v kid=%q", r.Loaded(), r.CurrentKeyID())
	}
	keys, err := st.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != r.CurrentKeyID() {
		t.Fatalf("store holds %d keys (%v), want the one current key %s", len(keys), keys, r.CurrentKeyID())
	}
	if !strings.HasPrefix(keys[0].ID, "20260314T120000Z-") {
		t.Errorf("kid %q does not start with the creation time", keys[0].ID)
	}
	// The private key is stored sealed, never as a seed or a full key.
	if len(keys[0].SealedPrivateKey) <= 32 || len(keys[0].PublicKey) != 32 {
		t.Errorf("stored key: %d sealed bytes, %d public bytes", len(keys[0].SealedPrivateKey), len(keys[0].PublicKey))
	}
	set := parseJWKS(t, r.JWKS())
	if got := kids(set); len(got) != 1 || got[0] != r.CurrentKeyID() {
		t.Fatalf("JWKS kids = %v, want [%s]", got, r.CurrentKeyID())
	}
	if set.Keys[0]["x"] != base64.RawURLEncoding.EncodeToString(keys[0].PublicKey) {
		t.Error("JWKS x is not the stored public key")
	}
}

func TestRingRotation(t *testing.T) {
	ctx := context.Background()
	r, st, clk := newRing(t)
	iss := NewIssuer(r, "https://api.example.com", time.Hour)
	ver := NewVerifier(r, "https://api.example.com", []string{"converter-pro"})
	claims := Claims{Audience: "converter-pro", Subject: "ins_1", License: "lic_1"}

	oldKid := r.CurrentKeyID()
	oldTok, err := iss.Issue(claims)
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(2 * time.Second)
	if err := r.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newKid := r.CurrentKeyID()
	if newKid == oldKid || newKid == "" {
		t.Fatalf("after Rotate kid = %q (was %q), want a new one", newKid, oldKid)
	}
	newTok, err := iss.Issue(claims)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerOf(t, newTok)["kid"]; got != newKid {
		t.Fatalf("new token kid = %v, want %s", got, newKid)
	}
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := ver.Verify(tok); err != nil {
			t.Errorf("%s token does not verify after rotation: %v", name, err)
		}
	}
	set := parseJWKS(t, r.JWKS())
	if got := kids(set); len(got) != 2 || got[0] != newKid || got[1] != oldKid {
		t.Fatalf("JWKS kids = %v, want [%s %s] (newest first)", got, newKid, oldKid)
	}

	// Another instance sharing the store sees the rotation on Load and
	// verifies tokens of both keys.
	other := NewRing(st, master(t, "s"), clk.Now)
	if err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if other.CurrentKeyID() != newKid {
		t.Fatalf("second ring current kid = %s, want %s", other.CurrentKeyID(), newKid)
	}
	otherVer := NewVerifier(other, "https://api.example.com", []string{"converter-pro"})
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := otherVer.Verify(tok); err != nil {
			t.Errorf("%s token does not verify on the second ring: %v", name, err)
		}
	}
}

func TestRingConcurrentRotationAddsOneKey(t *testing.T) {
	ctx := context.Background()
	a, st, clk := newRing(t)
	b := NewRing(st, master(t, "s"), clk.Now)
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// b rotates at the same instant: a's key is newer than b's notBefore,
	// so b adopts it instead of adding a third key.
	if err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("store holds %d keys after two simultaneous rotations, want 2", len(keys))
	}
	if a.CurrentKeyID() != b.CurrentKeyID() || a.CurrentKeyID() != keys[1].ID {
		t.Fatalf("rings disagree: a=%s b=%s store newest=%s", a.CurrentKeyID(), b.CurrentKeyID(), keys[1].ID)
	}
}

func TestRingLoadSecondRing(t *testing.T) {
	ctx := context.Background()
	first, st, clk := newRing(t)

	tests := []struct {
		name    string
		seed    string
		wantErr bool
	}{
		{"same secret", "s", false},
		{"different secret", "t", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(st, master(t, tt.seed), clk.Now)
			err := r.Load(ctx)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if r.CurrentKeyID() != first.CurrentKeyID() {
					t.Fatalf("kid = %s, want %s", r.CurrentKeyID(), first.CurrentKeyID())
				}
				return
			}
			if err == nil {
				t.Fatal("Load with another secret succeeded")
			}
			if !errors.Is(err, secret.ErrOpen) {
				t.Errorf("error %v does not wrap secret.ErrOpen", err)
			}
			for _, want := range []string{first.CurrentKeyID(), "secret"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if r.Loaded() {
				t.Error("ring reports Loaded after a failed Load")
			}
			keys, _ := st.SigningKeys(ctx)
			if len(keys) != 1 {
				t.Errorf("failed Load changed the store: %d keys", len(keys))
			}
		})
	}
}

type failingKeyStore struct{ err error }

func (f failingKeyStore) SigningKeys(context.Context) ([]store.SigningKey, error) { return nil, f.err }
func (f failingKeyStore) AddSigningKey(context.Context, store.SigningKey, time.Time) ([]store.SigningKey, error) {
	return nil, f.err
}

func TestRingStoreFailure(t *testing.T) {
	boom := errors.New("boom")
	r := NewRing(failingKeyStore{boom}, master(t, "s"), nil)
	if err := r.Load(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Load = %v, want the store's error wrapped", err)
	}
	if err := r.Rotate(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Rotate = %v, want the store's error wrapped", err)
	}
	if r.Loaded() {
		t.Fatal("ring reports Loaded after store failures")
	}
}

func TestRetentionDropsKeysWhoseTokensExpired(t *testing.T) {
	clk := newClock()
	now := clk.Now
	r := NewRing(openStore(t), master(t, "s"), now)
	r.SetRetention(time.Hour)
	if err := r.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := r.CurrentKeyID()
	clk.Advance(2 * time.Hour)
	second, err := r.RotateNow(context.Background())
	if err != nil || second == first {
		t.Fatalf("RotateNow: %q, %v", second, err)
	}
	if got := r.Keys(); len(got) != 2 || got[0] != second || got[1] != first {
		t.Fatalf("keys %v, want [%s %s]", got, second, first)
	}
	// A second RotateNow a moment later still rotates (an author's explicit ask).
	clk.Advance(time.Millisecond)
	third, err := r.RotateNow(context.Background())
	if err != nil || third == second {
		t.Fatalf("RotateNow again: %q, %v", third, err)
	}
	clk.Advance(61 * time.Minute)
	if err := r.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Keys(); len(got) != 1 || got[0] != third {
		t.Fatalf("after retention: keys %v, want [%s]", got, third)
	}
	if _, ok := r.publicKey(first); ok {
		t.Fatal("a key replaced beyond retention still verifies")
	}
}

type countingKeyStore struct {
	KeyStore
	reads atomic.Int64
}

func (c *countingKeyStore) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	c.reads.Add(1)
	return c.KeyStore.SigningKeys(ctx)
}

// TestVerifierLearnsAKeyRotatedElsewhere: instance B has not heard of A's
// rotation (its change notice is late or lost) when A's first token with
// the new key arrives; B reads the ring once and accepts it. Forged kids
// cost the store at most one read a second.
func TestVerifierLearnsAKeyRotatedElsewhere(t *testing.T) {
	ctx := context.Background()
	a, st, clk := newRing(t)
	counted := &countingKeyStore{KeyStore: st}
	b := NewRing(counted, master(t, "s"), clk.Now)
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := NewIssuer(a, testIssuer, time.Hour).Issue(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(b, testIssuer, []string{"converter-pro"})
	before := counted.reads.Load()
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("B refused A's token signed with the rotated key: %v", err)
	}
	if b.CurrentKeyID() != a.CurrentKeyID() {
		t.Fatalf("B's current kid %s, want A's %s", b.CurrentKeyID(), a.CurrentKeyID())
	}
	if n := counted.reads.Load() - before; n != 1 {
		t.Fatalf("%d store reads to learn the key, want 1", n)
	}

	parts := strings.Split(tok, ".")
	forge := func(kid string) string {
		h := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}
		return encodeSegment(t, h) + "." + parts[1] + "." + parts[2]
	}
	clk.Advance(2 * time.Second)
	before = counted.reads.Load()
	for i := 0; i < 50; i++ {
		if _, err := v.Verify(forge(fmt.Sprintf("forged-%d", i))); err == nil {
			t.Fatal("a forged kid verified")
		}
	}
	if n := counted.reads.Load() - before; n != 1 {
		t.Fatalf("50 forged kids within a second cost %d store reads, want 1", n)
	}
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(forge("forged-later")); err == nil {
		t.Fatal("a forged kid verified")
	}
	if n := counted.reads.Load() - before; n != 2 {
		t.Fatalf("a forged kid a second later cost %d reads in all, want 2", n)
	}
}

// TestRingIgnoresAnOlderSnapshot: a read of the store made before this
// ring's own rotation, installed after it, must not roll the ring back.
func TestRingIgnoresAnOlderSnapshot(t *testing.T) {
	ctx := context.Background()
	r, st, clk := newRing(t)
	before, err := st.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := r.CurrentKeyID()
	if err := r.install(before); err != nil {
		t.Fatal(err)
	}
	if r.CurrentKeyID() != rotated {
		t.Fatalf("current kid went back to %s after a stale snapshot, want %s", r.CurrentKeyID(), rotated)
	}
}

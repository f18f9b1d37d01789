package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testIssuer = "https://api.example.com"

func segment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("segment %d is not base64url: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segment %d is not JSON: %v", i, err)
	}
	return m
}

func headerOf(t *testing.T, tok string) map[string]any  { return segment(t, tok, 0) }
func payloadOf(t *testing.T, tok string) map[string]any { return segment(t, tok, 1) }

func encodeSegment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func fullClaims() Claims {
	return Claims{
		Audience:     "converter-pro",
		Subject:      "ins_abc",
		License:      "lic_def",
		Domain:       "acme.com",
		Class:        "production",
		Type:         "regular",
		SupportUntil: time.Date(2027, 4, 8, 0, 0, 0, 0, time.UTC).Unix(),
		Generation:   3,
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	r, _, clk := newRing(t)
	clk.Set(clk.Now().Add(500 * time.Millisecond)) // iat is truncated to the second
	iss := NewIssuer(r, testIssuer, time.Hour)
	if iss.Name() != testIssuer || iss.TTL() != time.Hour {
		t.Fatalf("Name/TTL = %q/%v", iss.Name(), iss.TTL())
	}
	in := fullClaims()
	in.Issuer = "https://forged.example" // Issue sets iss itself
	in.ID = "caller-chosen"              // and jti
	tok, err := iss.Issue(in)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	hdr := headerOf(t, tok)
	if hdr["alg"] != "EdDSA" || hdr["kid"] != r.CurrentKeyID() || hdr["typ"] != "JWT" {
		t.Fatalf("header = %v, want alg EdDSA, kid %s, typ JWT", hdr, r.CurrentKeyID())
	}

	p := payloadOf(t, tok)
	var names []string
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	if got, want := strings.Join(names, ","), "aud,cls,dom,exp,gen,iat,iss,jti,lic,nbf,sub,sup,typ"; got != want {
		t.Fatalf("payload claims = %s, want exactly %s", got, want)
	}
	if _, ok := p["aud"].(string); !ok {
		t.Fatalf("aud = %#v (%T), want a plain string", p["aud"], p["aud"])
	}
	iat := clk.Now().Truncate(time.Second).Unix()
	wantPayload := map[string]any{
		"iss": testIssuer, "aud": "converter-pro", "sub": "ins_abc", "lic": "lic_def",
		"dom": "acme.com", "cls": "production", "typ": "regular",
		"sup": float64(in.SupportUntil), "gen": float64(3),
		"iat": float64(iat), "nbf": float64(iat), "exp": float64(iat + 3600),
	}
	for k, v := range wantPayload {
		if p[k] != v {
			t.Errorf("payload %s = %#v, want %#v", k, p[k], v)
		}
	}
	jti, _ := p["jti"].(string)
	if len(jti) < 16 || jti == "caller-chosen" {
		t.Errorf("jti = %q, want a fresh random id", jti)
	}

	got, err := NewVerifier(r, testIssuer, []string{"converter-pro"}).Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := fullClaims()
	want.Issuer = testIssuer
	want.ID = jti
	if got.Issuer != want.Issuer || got.Audience != want.Audience || got.Subject != want.Subject ||
		got.License != want.License || got.Domain != want.Domain || got.Class != want.Class ||
		got.Type != want.Type || got.SupportUntil != want.SupportUntil || got.Generation != want.Generation ||
		got.ID != want.ID {
		t.Fatalf("Verify claims = %+v, want %+v", got, want)
	}
	if got.IssuedAt.Unix() != iat || got.NotBefore.Unix() != iat || got.ExpiresAt.Unix() != iat+3600 {
		t.Fatalf("times iat=%v nbf=%v exp=%v, want %d/%d/%d", got.IssuedAt, got.NotBefore, got.ExpiresAt, iat, iat, iat+3600)
	}

	// Two tokens for the same claims differ (jti).
	tok2, _ := iss.Issue(fullClaims())
	if payloadOf(t, tok2)["jti"] == jti {
		t.Error("two tokens share a jti")
	}
}

func TestIssueOmitsEmptyOptionalClaims(t *testing.T) {
	r, _, _ := newRing(t)
	tok, err := NewIssuer(r, testIssuer, time.Hour).Issue(Claims{Audience: "p", Subject: "ins_1", License: "lic_1", Domain: "localhost", Class: "local"})
	if err != nil {
		t.Fatal(err)
	}
	p := payloadOf(t, tok)
	for _, k := range []string{"typ", "sup"} {
		if _, ok := p[k]; ok {
			t.Errorf("empty %s claim present: %v", k, p[k])
		}
	}
	if p["gen"] != float64(0) {
		t.Errorf("gen = %v, want 0 (always present)", p["gen"])
	}
	if _, err := NewVerifier(r, testIssuer, []string{"p"}).Verify(tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerifyTime(t *testing.T) {
	r, _, clk := newRing(t)
	t0 := clk.Now()
	tok, err := NewIssuer(r, testIssuer, time.Hour).Issue(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(r, testIssuer, []string{"converter-pro"})
	exp := t0.Add(time.Hour)
	tests := []struct {
		name    string
		at      time.Time
		wantErr error // nil: accepted
	}{
		{"at issue", t0, nil},
		{"mid life", t0.Add(30 * time.Minute), nil},
		{"at exp", exp, nil},
		{"within leeway after exp", exp.Add(Leeway - time.Second), nil},
		{"beyond leeway after exp", exp.Add(Leeway + time.Second), jwt.ErrTokenExpired},
		{"long expired", exp.Add(24 * time.Hour), jwt.ErrTokenExpired},
		{"clock behind within leeway", t0.Add(-Leeway + time.Second), nil},
		{"clock behind beyond leeway", t0.Add(-Leeway - time.Second), jwt.ErrTokenNotValidYet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.at)
			_, err := v.Verify(tok)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify at %v: %v", tt.at.Sub(t0), err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify at %v = %v, want ErrInvalidToken wrapping %v", tt.at.Sub(t0), err, tt.wantErr)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	r, _, clk := newRing(t)
	iss := NewIssuer(r, testIssuer, time.Hour)
	good, err := iss.Issue(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	hdr, payload := headerOf(t, good), payloadOf(t, good)
	kid := r.CurrentKeyID()

	// The ring's public key, from its JWKS, as an attacker would get it.
	set := parseJWKS(t, r.JWKS())
	pub, err := base64.RawURLEncoding.DecodeString(set.Keys[0]["x"])
	if err != nil {
		t.Fatal(err)
	}

	withPayload := func(change func(map[string]any)) string {
		p := map[string]any{}
		for k, v := range payload {
			p[k] = v
		}
		change(p)
		return parts[0] + "." + encodeSegment(t, p) + "." + parts[2]
	}
	withHeader := func(change func(map[string]any)) string {
		h := map[string]any{}
		for k, v := range hdr {
			h[k] = v
		}
		change(h)
		return encodeSegment(t, h) + "." + parts[1] + "." + parts[2]
	}
	sign := func(method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatalf("signing %s: %v", method.Alg(), err)
		}
		return s
	}
	mapClaims := func() jwt.MapClaims {
		m := jwt.MapClaims{}
		for k, v := range payload {
			m[k] = v
		}
		return m
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	_, ringKey, err := r.signer() // to forge claims the Issuer never makes
	if err != nil {
		t.Fatal(err)
	}

	// A key from another store with another secret: valid signature, kid
	// unknown to this ring.
	foreign, _, _ := newRing(t)
	foreignTok, err := NewIssuer(foreign, testIssuer, time.Hour).Issue(fullClaims())
	if err != nil {
		t.Fatal(err)
	}

	noSub := fullClaims()
	noSub.Subject = ""
	noSubTok, _ := iss.Issue(noSub)
	noLic := fullClaims()
	noLic.License = ""
	noLicTok, _ := iss.Issue(noLic)
	wrongAudTok, _ := iss.Issue(Claims{Audience: "blog-scraper", Subject: "ins_1", License: "lic_1"})
	noAudTok, _ := iss.Issue(Claims{Subject: "ins_1", License: "lic_1"})
	otherIssuerTok, _ := NewIssuer(r, "https://evil.example", time.Hour).Issue(fullClaims())

	arrayAud := mapClaims()
	arrayAud["aud"] = []string{"blog-scraper"}
	noExp := mapClaims()
	delete(noExp, "exp")
	nbfFuture := mapClaims()
	nbfFuture["nbf"] = payload["iat"].(float64) + 600
	subNumber := mapClaims()
	subNumber["sub"] = 42

	tests := []struct {
		name    string
		tok     string
		wantErr error // checked besides ErrInvalidToken when set
	}{
		{"empty", "", jwt.ErrTokenMalformed},
		{"garbage", "not.a.jwt", jwt.ErrTokenMalformed},
		{"two segments", parts[0] + "." + parts[1], jwt.ErrTokenMalformed},
		{"tampered payload", withPayload(func(p map[string]any) { p["sub"] = "ins_other" }), jwt.ErrTokenSignatureInvalid},
		{"tampered generation", withPayload(func(p map[string]any) { p["gen"] = 4 }), jwt.ErrTokenSignatureInvalid},
		{"extended expiry", withPayload(func(p map[string]any) { p["exp"] = payload["exp"].(float64) + 86400 }), jwt.ErrTokenSignatureInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, ed25519.SignatureSize)), jwt.ErrTokenSignatureInvalid},
		{"no signature", parts[0] + "." + parts[1] + ".", jwt.ErrTokenSignatureInvalid},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, mapClaims()), jwt.ErrTokenSignatureInvalid},
		{"alg none header on real token", withHeader(func(h map[string]any) { h["alg"] = "none" }), jwt.ErrTokenSignatureInvalid},
		{"HS256 with public key as secret", sign(jwt.SigningMethodHS256, pub, kid, mapClaims()), jwt.ErrTokenSignatureInvalid},
		{"HS256 with JWKS x as secret", sign(jwt.SigningMethodHS256, []byte(set.Keys[0]["x"]), kid, mapClaims()), jwt.ErrTokenSignatureInvalid},
		{"signed by a stranger's key with a known kid", sign(jwt.SigningMethodEdDSA, strangerKey, kid, mapClaims()), jwt.ErrTokenSignatureInvalid},
		{"unknown kid", withHeader(func(h map[string]any) { h["kid"] = "20200101T000000Z-nope" }), jwt.ErrTokenUnverifiable},
		{"no kid", withHeader(func(h map[string]any) { delete(h, "kid") }), jwt.ErrTokenUnverifiable},
		{"non-string kid", withHeader(func(h map[string]any) { h["kid"] = 7 }), jwt.ErrTokenUnverifiable},
		{"token of a foreign ring", foreignTok, jwt.ErrTokenUnverifiable},
		{"wrong audience", wrongAudTok, jwt.ErrTokenInvalidAudience},
		{"array audience of another product", sign(jwt.SigningMethodEdDSA, ringKey, kid, arrayAud), nil},
		{"no audience", noAudTok, jwt.ErrTokenRequiredClaimMissing},
		{"wrong issuer", otherIssuerTok, jwt.ErrTokenInvalidIssuer},
		{"no exp", sign(jwt.SigningMethodEdDSA, ringKey, kid, noExp), jwt.ErrTokenRequiredClaimMissing},
		{"nbf in the future", sign(jwt.SigningMethodEdDSA, ringKey, kid, nbfFuture), jwt.ErrTokenNotValidYet},
		{"sub of wrong type", sign(jwt.SigningMethodEdDSA, ringKey, kid, subNumber), jwt.ErrTokenMalformed},
		{"missing sub", noSubTok, nil},
		{"missing lic", noLicTok, nil},
		{"longer than any token we issue", good + strings.Repeat("A", MaxTokenBytes), nil},
	}
	v := NewVerifier(r, testIssuer, []string{"converter-pro"})
	clk.Advance(time.Minute)
	t.Run("attacker-sized kid is clipped in the error", func(t *testing.T) {
		_, err := v.Verify(withHeader(func(h map[string]any) { h["kid"] = strings.Repeat("k", 2000) }))
		if err == nil || len(err.Error()) > 300 {
			t.Fatalf("error of %d bytes: %.80v", len(fmt.Sprint(err)), err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.tok)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if c != nil {
				t.Errorf("Verify returned claims with an error")
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v does not wrap %v", err, tt.wantErr)
			}
		})
	}

	// The untampered token still verifies (the table did not pass by
	// refusing everything).
	if _, err := v.Verify(good); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
}

func TestVerifierAudiences(t *testing.T) {
	r, _, _ := newRing(t)
	iss := NewIssuer(r, testIssuer, time.Hour)
	tok := func(aud string) string {
		s, err := iss.Issue(Claims{Audience: aud, Subject: "ins_1", License: "lic_1"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	multi := NewVerifier(r, testIssuer, []string{"converter-pro", "blog-scraper", "geo-api"})
	single := NewVerifier(r, testIssuer, []string{"geo-api"})
	noAud := NewVerifier(r, testIssuer, nil) // no product configured: nothing is for us
	tests := []struct {
		v    *Verifier
		name string
		aud  string
		ok   bool
	}{
		{multi, "multi first", "converter-pro", true},
		{multi, "multi second", "blog-scraper", true},
		{multi, "multi third", "geo-api", true},
		{multi, "multi other", "weather-api", false},
		{multi, "multi case differs", "Converter-Pro", false},
		{single, "single match", "geo-api", true},
		{single, "single other", "converter-pro", false},
		{noAud, "no audiences configured", "weather-api", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(tok(tt.aud))
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify(aud=%s): %v", tt.aud, err)
				}
				if c.Audience != tt.aud {
					t.Fatalf("aud = %s, want %s", c.Audience, tt.aud)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, jwt.ErrTokenInvalidAudience) {
				t.Fatalf("Verify(aud=%s) = %v, want invalid audience", tt.aud, err)
			}
		})
	}
}

func TestVerifyConcurrentWithRotation(t *testing.T) {
	r, _, clk := newRing(t)
	iss := NewIssuer(r, testIssuer, time.Hour)
	v := NewVerifier(r, testIssuer, []string{"converter-pro"})
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 5; i++ {
			clk.Advance(2 * time.Second)
			if err := r.Rotate(context.Background()); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 200; i++ {
		tok, err := iss.Issue(fullClaims())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("token %d refused during rotation: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(parseJWKS(t, r.JWKS()).Keys); n != 6 {
		t.Fatalf("JWKS holds %d keys after 5 rotations, want 6", n)
	}
}

func TestVerifierRemembersUntilExpiry(t *testing.T) {
	r, _, clk := newRing(t)
	iss := NewIssuer(r, testIssuer, time.Minute)
	tok, err := iss.Issue(Claims{Audience: "p", Subject: "ins_1", License: "lic_1", Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(r, testIssuer, []string{"p"})
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("Verify %d: %v", i, err)
		}
	}
	if len(v.verified) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(v.verified))
	}
	clk.Advance(time.Minute + Leeway)
	if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a remembered token outlived its exp: %v", err)
	}
	// A tampered copy is never answered from memory.
	if _, err := v.Verify(tok + "x"); err == nil {
		t.Fatal("tampered token accepted")
	}
}

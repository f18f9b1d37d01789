package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store/embedded"
	"github.com/licensegate/licensegate/tokens"
)

func TestRefreshRotationAndReuse(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	tokenURL := g.url("/v1/licenses/token")

	r1 := do(t, http.MethodPost, tokenURL, "grant_type=refresh_token&refresh_token="+a.str("refresh_token"))
	expectStatus(t, r1, http.StatusOK, "")
	if r1.str("refresh_token") == a.str("refresh_token") || r1.str("access_token") == "" {
		t.Fatalf("rotation did not issue a new pair: %s", r1.body)
	}
	expectStatus(t, g.call(r1.str("access_token")), http.StatusOK, "")

	r2 := do(t, http.MethodPost, tokenURL, map[string]string{"grant_type": "refresh_token", "refresh_token": r1.str("refresh_token")})
	expectStatus(t, r2, http.StatusOK, "")
	expectStatus(t, g.call(r2.str("access_token")), http.StatusOK, "")

	// A spent refresh token presented again: a cloned installation.
	replay := do(t, http.MethodPost, tokenURL, "grant_type=refresh_token&refresh_token="+a.str("refresh_token"))
	expectStatus(t, replay, http.StatusUnauthorized, "refresh_token_reused")
	if replay.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	// Every token of that family is now refused.
	expectStatus(t, g.call(r2.str("access_token")), http.StatusForbidden, "token_revoked")
	expectStatus(t, do(t, http.MethodPost, tokenURL, "grant_type=refresh_token&refresh_token="+r2.str("refresh_token")), http.StatusForbidden, "token_revoked")

	// Garbage refresh tokens are plain 401s.
	expectStatus(t, do(t, http.MethodPost, tokenURL, "grant_type=refresh_token&refresh_token=rt_nope"), http.StatusUnauthorized, "invalid_token")
	expectStatus(t, do(t, http.MethodPost, tokenURL, "grant_type=password"), http.StatusUnprocessableEntity, "validation_failed")
}

func TestDeactivateAndMove(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	token := a.str("access_token")
	expectStatus(t, g.call(token), http.StatusOK, "")

	st := do(t, http.MethodGet, g.url("/v1/licenses/status"), nil, "Authorization", "Bearer "+token)
	expectStatus(t, st, http.StatusOK, "")
	if st.str("license", "domain") != "acme.com" || st.str("license", "licensed_to") != "Alice" {
		t.Fatalf("status: %s", st.body)
	}

	// A move onto its own domain changes nothing and mints no second token
	// family (a copied access token must not start a chain of its own).
	same := do(t, http.MethodPost, g.url("/v1/licenses/move"), map[string]string{"domain": "www.acme.com"}, "Authorization", "Bearer "+token)
	expectStatus(t, same, http.StatusConflict, "domain_in_use")
	expectStatus(t, g.call(token), http.StatusOK, "")

	// Move keeps the installation id; the old token stops working.
	mv := do(t, http.MethodPost, g.url("/v1/licenses/move"), map[string]string{"domain": "new-acme.com"}, "Authorization", "Bearer "+token)
	expectStatus(t, mv, http.StatusOK, "")
	if mv.str("installation_id") != a.str("installation_id") || mv.str("license", "domain") != "new-acme.com" {
		t.Fatalf("move: %s", mv.body)
	}
	expectStatus(t, g.call(token), http.StatusForbidden, "token_revoked")
	moved := mv.str("access_token")
	expectStatus(t, g.call(moved), http.StatusOK, "")

	// A second move within the cooldown is refused with Retry-After.
	again := do(t, http.MethodPost, g.url("/v1/licenses/move"), map[string]string{"domain": "third.com"}, "Authorization", "Bearer "+moved)
	expectStatus(t, again, http.StatusTooManyRequests, "move_cooldown")
	if again.header.Get("Retry-After") == "" {
		t.Fatal("move_cooldown without Retry-After")
	}

	// Deactivate frees the slot and revokes the tokens.
	dr := do(t, http.MethodPost, g.url("/v1/licenses/deactivate"), nil, "Authorization", "Bearer "+moved)
	if dr.status != http.StatusNoContent {
		t.Fatalf("deactivate: %d %s", dr.status, dr.body)
	}
	expectStatus(t, g.call(moved), http.StatusForbidden, "installation_deactivated")
	expectStatus(t, g.activate("KEY-AAAA-0001", "elsewhere.com"), http.StatusCreated, "")

	// Deactivation by refresh token works too.
	b := g.activate("KEY-AAAA-0004", "dave.com")
	expectStatus(t, b, http.StatusCreated, "")
	dr = do(t, http.MethodPost, g.url("/v1/licenses/deactivate"), "refresh_token="+b.str("refresh_token"))
	if dr.status != http.StatusNoContent {
		t.Fatalf("deactivate by refresh token: %d %s", dr.status, dr.body)
	}
	expectStatus(t, g.call(b.str("access_token")), http.StatusForbidden, "installation_deactivated")
	expectStatus(t, do(t, http.MethodPost, g.url("/v1/licenses/deactivate"), nil), http.StatusUnauthorized, "invalid_token")
}

// TestTokensSurviveRestartAndForgeriesFail stops the gateway, reads the key
// ring from its store with the shared secret to forge tokens the gate must
// refuse, restarts it, and checks earlier tokens still pass.
func TestTokensSurviveRestartAndForgeriesFail(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	b := g.activate("KEY-AAAA-0002", "bob.com")
	expectStatus(t, b, http.StatusCreated, "")
	token := a.str("access_token")
	g.stop()

	dbPath := filepath.Join(g.dir, "licensegate.db")
	forged := forgeTokens(t, dbPath, a)
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"KEY-AAAA-0001", "KEY-AAAA-0002", a.str("refresh_token"), token, testSecret} {
		if bytes.Contains(raw, []byte(s)) || bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(s))) {
			t.Errorf("store file holds %.20s... in plaintext", s)
		}
	}

	g.start()
	expectStatus(t, g.call(token), http.StatusOK, "")
	r := do(t, http.MethodPost, g.url("/v1/licenses/token"), "grant_type=refresh_token&refresh_token="+a.str("refresh_token"))
	expectStatus(t, r, http.StatusOK, "")
	again := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, again, http.StatusOK, "")
	if again.str("installation_id") != a.str("installation_id") {
		t.Fatal("installation lost across restart")
	}

	for name, tok := range forged {
		t.Run(name, func(t *testing.T) {
			r := g.call(tok)
			expectStatus(t, r, http.StatusUnauthorized, "invalid_token")
			if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// The Bob token carries a past support date: forwarded as such.
	expectStatus(t, g.call(b.str("access_token")), http.StatusOK, "")
}

// forgeTokens builds tokens the gate must refuse, using the real signing
// key where that makes the test sharper.
func forgeTokens(t *testing.T, dbPath string, a response) map[string]string {
	t.Helper()
	st, err := embedded.Open(dbPath, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	master, err := secret.New([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	past := func() time.Time { return time.Now().Add(-3 * time.Hour) }
	oldRing := tokens.NewRing(st, master, past)
	if err := oldRing.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ring := tokens.NewRing(st, master, nil)
	if err := ring.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	claims := claimsOf(t, a.str("access_token"))
	issue := func(r *tokens.Ring, iss string, mutate func(*tokens.Claims)) string {
		c := claims
		mutate(&c)
		s, err := tokens.NewIssuer(r, iss, time.Hour).Issue(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	same := func(*tokens.Claims) {}
	out := map[string]string{
		"expired":        issue(oldRing, "https://gateway.test", same),
		"wrong audience": issue(ring, "https://gateway.test", func(c *tokens.Claims) { c.Audience = "other-product" }),
		"wrong issuer":   issue(ring, "https://evil.test", same),
	}
	valid := issue(ring, "https://gateway.test", same)
	parts := strings.Split(valid, ".")
	payload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(mustDecode(t, parts[1]), `"gen":1`, `"gen":9`, 1)))
	out["tampered"] = parts[0] + "." + payload + "." + parts[2]
	out["garbage"] = "not-a-jwt"

	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claimsMap(t, valid)))
	out["alg none"], _ = none.SignedString(jwt.UnsafeAllowNoneSignatureType)

	keys, err := st.SigningKeys(context.Background())
	if err != nil || len(keys) == 0 {
		t.Fatal("no signing keys", err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claimsMap(t, valid)))
	hs.Header["kid"] = keys[len(keys)-1].ID
	out["HS256 with the public key"], err = hs.SignedString([]byte(ed25519.PublicKey(keys[len(keys)-1].PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustDecode(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func claimsMap(t *testing.T, tok string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(mustDecode(t, strings.Split(tok, ".")[1])), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func claimsOf(t *testing.T, tok string) tokens.Claims {
	t.Helper()
	var c tokens.Claims
	if err := json.Unmarshal([]byte(mustDecode(t, strings.Split(tok, ".")[1])), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

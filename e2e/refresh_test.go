package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/licensegate/licensegate/internal/redistest"
)

// refreshAll sends n refreshes with one refresh token at once, spread over
// the gateways given (instances sharing a store), and returns the answers.
func refreshAll(t *testing.T, token string, n int, gws ...*gateway) []response {
	t.Helper()
	answers := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			g := gws[i%len(gws)]
			answers[i] = do(t, http.MethodPost, g.url("/v1/licenses/token"), "grant_type=refresh_token&refresh_token="+token)
		}()
	}
	close(start)
	wg.Wait()
	return answers
}

// sameNewPair checks every answer is a 200 with one and the same new pair,
// and returns it.
func sameNewPair(t *testing.T, answers []response, old string) response {
	t.Helper()
	first := answers[0]
	for i, r := range answers {
		expectStatus(t, r, http.StatusOK, "")
		if r.str("access_token") != first.str("access_token") || r.str("refresh_token") != first.str("refresh_token") {
			t.Fatalf("answer %d holds another pair than answer 0:\n%s\n%s", i, r.body, first.body)
		}
	}
	if first.str("refresh_token") == old || first.str("access_token") == "" {
		t.Fatalf("no new pair: %s", first.body)
	}
	return first
}

// Twenty PHP workers sharing one stored refresh token refresh at once: all
// get the same new pair, the installation stays active and the pair works;
// the token before it, once the new one was used, is reuse as before.
func TestConcurrentRefreshesAreNotAClone(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	next := sameNewPair(t, refreshAll(t, a.str("refresh_token"), 20, g), a.str("refresh_token"))
	expectStatus(t, g.call(next.str("access_token")), http.StatusOK, "")
	st := do(t, http.MethodGet, g.url("/v1/licenses/status"), nil, "Authorization", "Bearer "+next.str("access_token"))
	expectStatus(t, st, http.StatusOK, "")

	// The successor is used; the token it replaced is now plain reuse.
	third := do(t, http.MethodPost, g.url("/v1/licenses/token"), "grant_type=refresh_token&refresh_token="+next.str("refresh_token"))
	expectStatus(t, third, http.StatusOK, "")
	replay := do(t, http.MethodPost, g.url("/v1/licenses/token"), "grant_type=refresh_token&refresh_token="+a.str("refresh_token"))
	expectStatus(t, replay, http.StatusUnauthorized, "refresh_token_reused")
	if replay.str("error") != "invalid_grant" {
		t.Fatalf("reuse answer without error=invalid_grant: %s", replay.body)
	}
	expectStatus(t, g.call(third.str("access_token")), http.StatusForbidden, "token_revoked")

	// Neither pair sits in the store file in plaintext (the repeat answer
	// is sealed).
	http.DefaultClient.CloseIdleConnections() // so the gateway stops at once
	g.stop()
	raw, err := os.ReadFile(filepath.Join(g.dir, "licensegate.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{next.str("access_token"), next.str("refresh_token"), third.str("refresh_token")} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("store file holds a token in plaintext: %.20s...", s)
		}
	}
}

// The same on Redis, with the refreshes spread over two instances.
func TestConcurrentRefreshesAcrossInstances(t *testing.T) {
	srv := redistest.NewServer(t)
	a := startOnRedis(t, srv.Addr(), nil)
	b := startOnRedis(t, srv.Addr(), nil)
	act := a.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, act, http.StatusCreated, "")
	next := sameNewPair(t, refreshAll(t, act.str("refresh_token"), 20, a, b), act.str("refresh_token"))
	expectStatus(t, a.call(next.str("access_token")), http.StatusOK, "")
	expectStatus(t, b.call(next.str("access_token")), http.StatusOK, "")
	assertNoSecretsInRedis(t, srv.Addr(), []string{act.str("refresh_token"), next.str("refresh_token"), next.str("access_token"), testSecret})
}

// A standard OAuth2 client refreshes at the token endpoint, and a refused
// refresh reaches it classified (RFC 6749 section 5.2).
func TestOAuth2ClientRefresh(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: g.url("/v1/licenses/token"), AuthStyle: oauth2.AuthStyleInParams}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: a.str("refresh_token")}).Token()
	if err != nil {
		t.Fatalf("oauth2 refresh: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == a.str("refresh_token") || tok.Expiry.IsZero() {
		t.Fatalf("oauth2 token %+v", tok)
	}
	expectStatus(t, g.call(tok.AccessToken), http.StatusOK, "")
	// The successor is used, so the first token is reuse.
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("oauth2 second refresh: %v", err)
	}

	// In this order: the reuse revokes the family the second is from.
	for _, c := range []struct{ name, token string }{
		{"reused", a.str("refresh_token")},
		{"revoked", tok.RefreshToken},
		{"unknown", "rt_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
	} {
		_, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: c.token}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("%s refresh token: oauth2 error %v, want a RetrieveError with invalid_grant", c.name, err)
		}
	}
}

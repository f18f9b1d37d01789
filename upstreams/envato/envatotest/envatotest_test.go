package envatotest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestRefreshGrant: a refresh token buys a new access token, without a new
// refresh token, as Envato answers; a wrong one is invalid_grant.
func TestRefreshGrant(t *testing.T) {
	srv := New(t, "id", "secret")
	srv.AddBuyer(Buyer{Username: "b"})
	cfg := oauth2.Config{ClientID: "id", ClientSecret: "secret", RedirectURL: "https://portal.example/cb",
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/authorization", TokenURL: srv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(cfg.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v, refresh token %t", err, tok != nil && tok.RefreshToken != "")
	}
	tok.Expiry = time.Now().Add(-time.Minute) // make the source refresh
	fresh, err := cfg.TokenSource(context.Background(), tok).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.AccessToken == "" {
		t.Fatalf("refresh: %v", err)
	}
	tok.RefreshToken = "nope"
	_, err = cfg.TokenSource(context.Background(), tok).Token()
	if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_grant" {
		t.Errorf("wrong refresh token: %v", err)
	}
}

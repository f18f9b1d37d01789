package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
)

// RFC 6750 section 3.1: a request that presented no credential gets a bare
// Bearer challenge; error="invalid_token" is for a token that was refused.
func TestWriteProblemBearerChallenge(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"no token", &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "A Bearer access token is required.", Cause: errNoBearer}, "Bearer"},
		{"no credential, joined", errors.Join(&gateway.Error{Code: gateway.CodeInvalidToken, Detail: "x"}, errNoBearer), "Bearer"},
		{"refused token", &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "The access token is not valid.", Cause: errors.New("bad signature")}, `Bearer error="invalid_token"`},
		{"reused refresh token", &gateway.Error{Code: gateway.CodeRefreshTokenReused, Detail: "x"}, `Bearer error="invalid_token"`},
		{"not a 401", &gateway.Error{Code: gateway.CodeLicenseRevoked, Detail: "x"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeProblem(rec, zap.NewNop(), c.err)
			if got := rec.Header().Get("WWW-Authenticate"); got != c.want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.want)
			}
		})
	}
}

func TestGateChallengeWithoutToken(t *testing.T) {
	g := &Gate{logger: zap.NewNop()}
	for name, auth := range map[string]string{"no header": "", "basic": "Basic dTpw", "empty bearer": "Bearer "} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			if err := g.ServeHTTP(rec, req, nil); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("%d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

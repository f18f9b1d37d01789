package httpapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

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
		{"no token", &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "A Bearer access token is required.", Cause: ErrNoBearer}, "Bearer"},
		{"no credential, joined", errors.Join(&gateway.Error{Code: gateway.CodeInvalidToken, Detail: "x"}, ErrNoBearer), "Bearer"},
		{"refused token", &gateway.Error{Code: gateway.CodeInvalidToken, Detail: "The access token is not valid.", Cause: errors.New("bad signature")}, `Bearer error="invalid_token"`},
		{"reused refresh token", &gateway.Error{Code: gateway.CodeRefreshTokenReused, Detail: "x"}, `Bearer error="invalid_token"`},
		{"not a 401", &gateway.Error{Code: gateway.CodeLicenseRevoked, Detail: "x"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteProblem(rec, zap.NewNop(), c.err)
			if got := rec.Header().Get("WWW-Authenticate"); got != c.want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, c.want)
			}
		})
	}
}

// A problem classified as the client's leaving is written as a bare 499.
func TestWriteProblemClientClosed(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	w := httptest.NewRecorder()
	WriteProblem(w, zap.New(core), &gateway.Error{Code: gateway.CodeClientClosed, Cause: context.Canceled})
	if w.Code != StatusClientClosed || w.Body.Len() != 0 {
		t.Errorf("got %d %q, want a bare 499", w.Code, w.Body)
	}
	if logs.FilterLevelExact(zapcore.DebugLevel).FilterMessage("client closed request").Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
}

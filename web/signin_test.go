package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// beginSignIn starts an attempt over HTTPS and returns it with its cookie.
func beginSignIn(t *testing.T, s *Sessions) (SignIn, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	si, err := s.BeginSignIn(rec, httptest.NewRequest(http.MethodGet, "https://h/account/sign-in", nil), "/account/licenses/lic_1")
	if err != nil {
		t.Fatal(err)
	}
	c := cookieNamed(rec, testCookie+signInSuffix)
	if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge != int(DefaultSignInTTL/time.Second) {
		t.Fatalf("sign-in cookie = %+v", c)
	}
	return si, c
}

func TestSignInState(t *testing.T) {
	const callback = "https://h/account/auth/envato/callback"
	tests := []struct {
		name    string
		state   func(si SignIn) string
		advance time.Duration
		cookie  bool
		want    bool
	}{
		{name: "the browser's own state", state: func(si SignIn) string { return si.ID }, cookie: true, want: true},
		{name: "forged state", state: func(SignIn) string { return "forged" }, cookie: true},
		{name: "empty state", state: func(SignIn) string { return "" }, cookie: true},
		{name: "callback replayed in another browser", state: func(si SignIn) string { return si.ID }, cookie: false},
		{name: "attempt expired", state: func(si SignIn) string { return si.ID }, cookie: true, advance: DefaultSignInTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := testSessions(t, testMaster(t, 0), clk)
			si, c := beginSignIn(t, s)
			if len(si.Verifier) != 43 || si.ID == "" || si.ReturnTo != "/account/licenses/lic_1" {
				t.Fatalf("attempt = %+v", si)
			}
			clk.Advance(tt.advance)
			r := httptest.NewRequest(http.MethodGet, callback+"?"+url.Values{"state": {tt.state(si)}}.Encode(), nil)
			if tt.cookie {
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
			got, ok := s.MatchState(r, r.URL.Query().Get("state"))
			if ok != tt.want {
				t.Fatalf("MatchState ok = %v, want %v", ok, tt.want)
			}
			if ok && (got.ID != si.ID || got.Verifier != si.Verifier || got.ReturnTo != si.ReturnTo) {
				t.Errorf("matched %+v, began %+v", got, si)
			}
		})
	}
}

func TestStartSpendsTheSignIn(t *testing.T) {
	s := testSessions(t, testMaster(t, 0), newClock())
	_, _ = beginSignIn(t, s)
	rec := httptest.NewRecorder()
	if _, err := s.Start(rec, httptest.NewRequest(http.MethodGet, "https://h/account/auth/envato/callback", nil), "envato:alice", nil); err != nil {
		t.Fatal(err)
	}
	if c := cookieNamed(rec, testCookie+signInSuffix); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-in cookie not cleared: %+v", c)
	}
}

func TestVerifySignIn(t *testing.T) {
	tests := []struct {
		name   string
		token  func(s *Sessions, si SignIn) string
		cookie bool
		want   error
	}{
		{"right token", func(s *Sessions, si SignIn) string { return s.SignInCSRFToken(si) }, true, nil},
		{"no attempt", func(s *Sessions, si SignIn) string { return s.SignInCSRFToken(si) }, false, ErrNoSession},
		{"no token", func(*Sessions, SignIn) string { return "" }, true, ErrCSRFToken},
		{"a session's token is no sign-in token", func(s *Sessions, si SignIn) string {
			return s.CSRFToken(Session{ID: si.ID})
		}, true, ErrCSRFToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSessions(t, testMaster(t, 0), newClock())
			si, c := beginSignIn(t, s)
			body := url.Values{CSRFField: {tt.token(s, si)}, "email": {"a@example.com"}}.Encode()
			r := httptest.NewRequest(http.MethodPost, "https://h/account/sign-in/email", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.cookie {
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
			if _, err := s.VerifySignIn(r); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLocalPath(t *testing.T) {
	tests := []struct {
		base, p, want string
		ok            bool
	}{
		{"/account", "/account", "/account", true},
		{"/account", "/account/licenses/lic_1", "/account/licenses/lic_1", true},
		{"/account/", "/account/licenses/lic_1?tab=installations", "/account/licenses/lic_1?tab=installations", true},
		{"/account", "/accountant", "", false},
		{"/account", "/", "", false},
		{"/account", "", "", false},
		{"/account", "account/x", "", false},
		{"/account", "//evil.example/account/", "", false},
		{"/account", "/\\evil.example", "", false},
		{"/account", "https://evil.example/account/", "", false},
		{"/account", "/account/../admin", "", false},
		{"/account", "/account/%2e%2e/admin", "", false},
		{"/account", "/account/x#frag", "", false},
		{"/account", "/account/\r\nSet-Cookie:x", "", false},
		{"", "/licenses/lic_1", "/licenses/lic_1", true},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.p, func(t *testing.T) {
			got, ok := LocalPath(tt.base, tt.p)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("LocalPath = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

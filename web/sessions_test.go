package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/secret"
)

const testCookie = "__Host-licensegate_portal"

// testMaster returns a Master built from a fixed secret seeded by b.
func testMaster(t *testing.T, b byte) *secret.Master {
	t.Helper()
	m, err := secret.New([]byte(strings.Repeat(string(rune('a'+b)), 32)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)} }

// testSessions returns Sessions over a test master and clock.
func testSessions(t *testing.T, m *secret.Master, c *clock) *Sessions {
	t.Helper()
	s, err := NewSessions(SessionsConfig{Master: m, CookieName: testCookie, TTL: time.Hour, Now: c.Now, LocalDevelopment: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cookieNamed returns the Set-Cookie of rec with name, or nil.
func cookieNamed(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// withCookies returns a request to target carrying cookies.
func withCookies(method, target string, cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

func TestNewSessionsRefusesBadConfig(t *testing.T) {
	m := testMaster(t, 0)
	tests := []struct {
		name string
		cfg  SessionsConfig
	}{
		{"no master", SessionsConfig{CookieName: testCookie}},
		{"no __Host- prefix", SessionsConfig{Master: m, CookieName: "licensegate_portal"}},
		{"prefix only", SessionsConfig{Master: m, CookieName: HostPrefix}},
		{"bad character", SessionsConfig{Master: m, CookieName: HostPrefix + "a;b"}},
		{"negative ttl", SessionsConfig{Master: m, CookieName: testCookie, TTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSessions(tt.cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	tests := []struct {
		target     string
		wantName   string
		wantSecure bool
	}{
		{"https://licenses.example.com/account/", testCookie, true},
		{"https://localhost/account/", testCookie, true},
		// A proxy in front terminated TLS, or someone runs plain HTTP in
		// production: still Secure; the browser that came over HTTPS keeps it.
		{"http://licenses.example.com/account/", testCookie, true},
		{"http://localhost/account/", "licensegate_portal", false},
		{"http://localhost:2015/account/", "licensegate_portal", false},
		{"http://127.0.0.1:8080/account/", "licensegate_portal", false},
		{"http://[::1]:8080/account/", "licensegate_portal", false},
		{"http://[::1]/account/", "licensegate_portal", false},
		{"http://localhost.example.com/", testCookie, true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			s := testSessions(t, testMaster(t, 0), newClock())
			rec := httptest.NewRecorder()
			if _, err := s.Start(rec, httptest.NewRequest(http.MethodGet, tt.target, nil), "envato:alice", []string{"lic_1"}); err != nil {
				t.Fatal(err)
			}
			c := cookieNamed(rec, tt.wantName)
			if c == nil {
				t.Fatalf("no cookie %q in %v", tt.wantName, rec.Header()["Set-Cookie"])
			}
			if c.Secure != tt.wantSecure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
				c.Path != "/" || c.Domain != "" || c.MaxAge != 3600 {
				t.Errorf("cookie = %+v", c)
			}
			if strings.Contains(c.Value, "alice") || strings.Contains(c.Value, "lic_1") {
				t.Error("cookie value shows its contents")
			}
			if _, ok := s.Read(withCookies(http.MethodGet, tt.target, c)); !ok {
				t.Error("the cookie just set does not read back")
			}
		})
	}
}

func TestSessionRoundTrip(t *testing.T) {
	clk := newClock()
	s := testSessions(t, testMaster(t, 0), clk)
	rec := httptest.NewRecorder()
	started, err := s.Start(rec, httptest.NewRequest(http.MethodGet, "https://h/account/", nil), "envato:alice", []string{"lic_1", "lic_2"})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.Read(withCookies(http.MethodGet, "https://h/account/", cookieNamed(rec, testCookie)))
	if !ok {
		t.Fatal("no session")
	}
	if got.ID != started.ID || got.Identity != "envato:alice" || strings.Join(got.Licenses, ",") != "lic_1,lic_2" ||
		!got.IssuedAt.Equal(clk.t) || !got.ExpiresAt.Equal(clk.t.Add(time.Hour)) {
		t.Errorf("read %+v, started %+v", got, started)
	}
	if len(got.ID) < 22 {
		t.Errorf("session id %q is too short to be 128 random bits", got.ID)
	}
	again, _ := s.Start(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "https://h/", nil), "envato:alice", nil)
	if again.ID == started.ID {
		t.Error("a new sign-in kept the session id")
	}
}

func TestSessionRefusals(t *testing.T) {
	const secure = "https://h/account/"
	// issue starts a session on s and returns its cookie as a request to target sees it.
	issue := func(t *testing.T, s *Sessions, target string) *http.Cookie {
		rec := httptest.NewRecorder()
		if _, err := s.Start(rec, httptest.NewRequest(http.MethodGet, target, nil), "envato:alice", nil); err != nil {
			t.Fatal(err)
		}
		return rec.Result().Cookies()[0]
	}
	tests := []struct {
		name string
		// request builds the request to read, given a fresh Sessions and clock.
		request func(t *testing.T, s *Sessions, clk *clock) *http.Request
	}{
		{"no cookie", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			return httptest.NewRequest(http.MethodGet, secure, nil)
		}},
		{"tampered", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			c := issue(t, s, secure)
			b := []byte(c.Value)
			b[len(b)/2] ^= 1
			c.Value = string(b)
			return withCookies(http.MethodGet, secure, c)
		}},
		{"truncated", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			c := issue(t, s, secure)
			c.Value = c.Value[:10]
			return withCookies(http.MethodGet, secure, c)
		}},
		{"not base64", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			return withCookies(http.MethodGet, secure, &http.Cookie{Name: testCookie, Value: "%%%"})
		}},
		{"oversized", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			return withCookies(http.MethodGet, secure, &http.Cookie{Name: testCookie, Value: strings.Repeat("A", 5000)})
		}},
		{"sealed under another secret", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			return withCookies(http.MethodGet, secure, issue(t, testSessions(t, testMaster(t, 1), clk), secure))
		}},
		{"expired though the browser still sends it", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			c := issue(t, s, secure)
			clk.Advance(time.Hour)
			return withCookies(http.MethodGet, secure, c)
		}},
		{"another surface's cookie under this name", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			other, err := NewSessions(SessionsConfig{Master: testMaster(t, 0), CookieName: "__Host-licensegate_console", Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			c := issue(t, other, secure)
			c.Name = testCookie
			return withCookies(http.MethodGet, secure, c)
		}},
		{"flash cookie presented as the session", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			rec := httptest.NewRecorder()
			if err := s.SetFlash(rec, httptest.NewRequest(http.MethodGet, secure, nil), Flash{Text: "hi"}); err != nil {
				t.Fatal(err)
			}
			c := rec.Result().Cookies()[0]
			c.Name = testCookie
			return withCookies(http.MethodGet, secure, c)
		}},
		{"localhost cookie promoted to the __Host- name", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			c := issue(t, s, "http://localhost/account/")
			c.Name = testCookie
			return withCookies(http.MethodGet, "https://localhost/account/", c)
		}},
		{"__Host- cookie sent over plain-HTTP localhost", func(t *testing.T, s *Sessions, clk *clock) *http.Request {
			c := issue(t, s, "https://localhost/account/")
			return withCookies(http.MethodGet, "http://localhost/account/", c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := testSessions(t, testMaster(t, 0), clk)
			if sess, ok := s.Read(tt.request(t, s, clk)); ok {
				t.Fatalf("read a session: %+v", sess)
			}
		})
	}
}

func TestSessionTooLargeIsRefused(t *testing.T) {
	s := testSessions(t, testMaster(t, 0), newClock())
	licenses := make([]string, 200)
	for i := range licenses {
		licenses[i] = fmt.Sprintf("lic_%036d", i)
	}
	rec := httptest.NewRecorder()
	_, err := s.Start(rec, httptest.NewRequest(http.MethodGet, "https://h/", nil), "envato:alice", licenses)
	if !errors.Is(err, ErrCookieTooLarge) {
		t.Fatalf("err = %v, want ErrCookieTooLarge", err)
	}
	if strings.Contains(err.Error(), "lic_") || strings.Contains(err.Error(), "alice") {
		t.Errorf("error shows the session: %v", err)
	}
	if len(rec.Header()["Set-Cookie"]) != 0 {
		t.Errorf("a cookie was set: %v", rec.Header()["Set-Cookie"])
	}
}

func TestSessionEnd(t *testing.T) {
	for _, target := range []string{"https://h/account/", "http://localhost/account/"} {
		t.Run(target, func(t *testing.T) {
			s := testSessions(t, testMaster(t, 0), newClock())
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, target, nil)
			s.End(rec, r)
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies = %v", cookies)
			}
			c := cookies[0]
			if c.Name != s.session.nameFor(r) || c.MaxAge >= 0 || c.Value != "" || c.Path != "/" || c.Secure != !insecureLocal(r) {
				t.Errorf("clearing cookie = %+v", c)
			}
		})
	}
}

func TestSessionsVerify(t *testing.T) {
	const target = "https://licenses.example.com/account/deactivate"
	tests := []struct {
		name    string
		form    func(token, otherToken string) url.Values
		query   string
		headers map[string]string
		noSess  bool
		want    error
	}{
		{name: "right token", form: func(tok, _ string) url.Values { return url.Values{CSRFField: {tok}} }},
		{name: "right token, same-origin browser", form: func(tok, _ string) url.Values { return url.Values{CSRFField: {tok}} },
			headers: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://licenses.example.com"}},
		{name: "no session", noSess: true, form: func(tok, _ string) url.Values { return url.Values{CSRFField: {tok}} }, want: ErrNoSession},
		{name: "no token", form: func(string, string) url.Values { return url.Values{"installation": {"i_1"}} }, want: ErrCSRFToken},
		{name: "empty token", form: func(string, string) url.Values { return url.Values{CSRFField: {""}} }, want: ErrCSRFToken},
		{name: "another session's token", form: func(_, other string) url.Values { return url.Values{CSRFField: {other}} }, want: ErrCSRFToken},
		{name: "token in the URL only", form: func(string, string) url.Values { return nil }, query: "tok", want: ErrCSRFToken},
		{name: "cross-site by Sec-Fetch-Site", form: func(tok, _ string) url.Values { return url.Values{CSRFField: {tok}} },
			headers: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: ErrCrossOrigin},
		{name: "foreign Origin", form: func(tok, _ string) url.Values { return url.Values{CSRFField: {tok}} },
			headers: map[string]string{"Origin": "https://evil.example"}, want: ErrCrossOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSessions(t, testMaster(t, 0), newClock())
			rec := httptest.NewRecorder()
			sess, err := s.Start(rec, httptest.NewRequest(http.MethodGet, target, nil), "envato:alice", nil)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := s.Start(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil), "envato:mallory", nil)
			tok := s.CSRFToken(sess)
			u := target
			if tt.query != "" {
				u += "?" + url.Values{CSRFField: {tok}}.Encode()
			}
			r := httptest.NewRequest(http.MethodPost, u, strings.NewReader(tt.form(tok, s.CSRFToken(other)).Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if !tt.noSess {
				c := cookieNamed(rec, testCookie)
				r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
			}
			got, err := s.Verify(r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && got.ID != sess.ID {
				t.Errorf("verified session %q, want %q", got.ID, sess.ID)
			}
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Error("the error shows the token")
			}
		})
	}
}

// TestRelaxedCookieOnlyForLocalDevelopment: a surface whose address is
// public keeps Secure and __Host- even when a TLS-ending proxy passes a
// plain-HTTP "Host: localhost" on.
func TestRelaxedCookieOnlyForLocalDevelopment(t *testing.T) {
	for _, local := range []bool{false, true} {
		s, err := NewSessions(SessionsConfig{Master: testMaster(t, 0), CookieName: testCookie, LocalDevelopment: local})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		if _, err := s.Start(rec, httptest.NewRequest(http.MethodGet, "http://localhost:8080/account/", nil), "envato:alice", nil); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		relaxed := !c.Secure && !strings.HasPrefix(c.Name, HostPrefix)
		if relaxed != local {
			t.Errorf("LocalDevelopment %v: cookie %s Secure=%v", local, c.Name, c.Secure)
		}
	}
}

package upstreams

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoRefusesLargeBodiesWithoutReadingThem(t *testing.T) {
	const total = 256 << 20 // what the server would send
	var written atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 32<<10)
		for written.Load() < total {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	_, err := Client{HTTP: srv.Client(), MaxBody: 1 << 20}.Do(context.Background(), req)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("err %v, want ErrBodyTooLarge", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server still writing: the body was not abandoned")
	}
	if w := written.Load(); w >= total/4 {
		t.Fatalf("server wrote %d bytes before the client gave up", w)
	}
	t.Logf("server wrote %d KiB of %d MiB before the client closed", written.Load()>>10, total>>20)
}

func TestDoRefusesAnnouncedLargeBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(10<<20))
		w.WriteHeader(200)
		_, _ = w.Write(make([]byte, 1024))
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if _, err := (Client{HTTP: srv.Client(), MaxBody: 1 << 20}).Do(context.Background(), req); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"30":                            30 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"":                              0,
		"Thu, 01 Jan 2026 00:01:00 GMT": time.Minute,
		"Wed, 31 Dec 2025 00:01:00 GMT": 0,
	}
	for v, want := range cases {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := RetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

func TestUUIDKey(t *testing.T) {
	ok := map[string]string{
		"86781236-23d0-4b3c-7dfa-c1c147e0dece":       "86781236-23d0-4b3c-7dfa-c1c147e0dece",
		"  86781236-23D0-4B3C-7DFA-C1C147E0DECE\n":   "86781236-23d0-4b3c-7dfa-c1c147e0dece",
		"\u200b86781236-23d0-4b3c-7dfa-c1c147e0dece": "86781236-23d0-4b3c-7dfa-c1c147e0dece",
	}
	for in, want := range ok {
		if got, err := UUIDKey(in); err != nil || got != want {
			t.Errorf("UUIDKey(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "86781236-23d0-4b3c-7dfa-c1c147e0dec", "86781236x23d0-4b3c-7dfa-c1c147e0dece",
		"86781236-23d0-4b3c-7dfa-c1c147e0decg", "86781236\u201323d0-4b3c-7dfa-c1c147e0dece", "DEMO-1111-2222-3333"} {
		if _, err := UUIDKey(in); !errors.Is(err, ErrKeyFormat) {
			t.Errorf("UUIDKey(%q) accepted", in)
		}
	}
}

func TestParseRate(t *testing.T) {
	ok := map[string]Rate{"60/m": {60, time.Minute}, "1/s": {1, time.Second}, "5/10m": {5, 10 * time.Minute}, "1000/d": {1000, 24 * time.Hour}}
	for in, want := range ok {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "60", "0/m", "-1/m", "x/m", "5/", "5/0s", "5/fortnight"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	ok := map[string]string{
		"https://api.envato.com":              "https://api.envato.com",
		"http://127.0.0.1:8080/":              "http://127.0.0.1:8080",
		"https://api.example.com/staging/":    "https://api.example.com/staging",
		" https://api.example.com/staging\n":  "https://api.example.com/staging",
		"https://api.example.com/a%20b/":      "https://api.example.com/a%20b",
		"HTTPS://api.example.com":             "https://api.example.com",
		"http://[2001:db8::1]:8080/licences/": "http://[2001:db8::1]:8080/licences",
	}
	for in, want := range ok {
		if got, err := ParseBaseURL(in); err != nil || got != want {
			t.Errorf("ParseBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	refused := map[string]string{
		"":                              "base_url is required",
		" \n":                           "base_url is required",
		"api.example.com":               "not an http or https URL",
		"://api.example.com":            "base_url: ",
		"ftp://api.example.com":         "not an http or https URL",
		"https://":                      "has no host",
		"http:///api":                   "has no host",
		"https://api.example.com/?x=1":  "must not hold a query",
		"https://api.example.com/#x":    "must not hold a query",
		"https://u:p@api.example.com":   "user info",
		"https://api.example.com/%zz":   "base_url: ",
		"https://api.exa mple.com/":     "base_url: ",
		"https://api.example.com/\x00/": "base_url: ",
	}
	for in, want := range refused {
		if got, err := ParseBaseURL(in); err == nil || got != "" || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBaseURL(%q) = %q, %v; want an error containing %q", in, got, err, want)
		}
	}
}

func TestNewClient(t *testing.T) {
	c, err := NewClient(Client{})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP == nil || c.HTTP == http.DefaultClient || c.HTTP.Timeout != 0 || c.MaxBody != DefaultMaxBody || c.Now == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	hc := &http.Client{Timeout: time.Second}
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	c, err = NewClient(Client{HTTP: hc, MaxBody: 512, Now: now})
	if err != nil || c.HTTP.Timeout != time.Second || c.HTTP.CheckRedirect == nil || c.MaxBody != 512 || c.Now().Year() != 2026 {
		t.Errorf("NewClient(client, 512, clock) = %+v, %v; want them kept, redirects refused", c, err)
	}
	if hc.CheckRedirect != nil {
		t.Error("NewClient changed the caller's http.Client")
	}
	if _, err := NewClient(Client{MaxBody: -1}); err == nil || !strings.Contains(err.Error(), "max_body") {
		t.Errorf("negative MaxBody: %v, want a max_body refusal", err)
	}
}

func TestClientDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Header.Get("User-Agent")))
	}))
	defer srv.Close()
	c, _ := NewClient(Client{HTTP: srv.Client(), MaxBody: int64(len(UserAgent))})
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := c.Do(context.Background(), req)
	if err != nil || resp.Status != 200 || string(resp.Body) != UserAgent {
		t.Fatalf("Do = %+v, %v", resp, err)
	}
	c.MaxBody--
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	if _, err := c.Do(context.Background(), req); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("Do past MaxBody: %v, want ErrBodyTooLarge", err)
	}
}

func TestRedact(t *testing.T) {
	const code = "a67f4582-95d6-4019-81f3-75d1ebe3a071"
	plain := errors.New("connection refused")
	if got := Redact(plain, code, "[code]"); got != plain {
		t.Errorf("an error without the code was replaced: %v", got)
	}
	if Redact(nil, code, "[code]") != nil {
		t.Error("nil was not kept")
	}
	ue := &url.Error{Op: "Get", URL: "https://api.example.com/sale?code=" + code, Err: context.DeadlineExceeded}
	got := Redact(fmt.Errorf("envato: %w", ue), code, "[code]")
	if strings.Contains(got.Error(), code) || !strings.Contains(got.Error(), "code=[code]") {
		t.Errorf("Redact = %q", got)
	}
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("%v lost its chain", got)
	}
	inner := &url.Error{Op: "Get", URL: "https://x", Err: fmt.Errorf("bad code %s", code)}
	got = Redact(inner, code, "[code]")
	if strings.Contains(got.Error(), code) || errors.Unwrap(got) != nil {
		t.Errorf("Redact = %q (unwraps to %v); want only the redacted text", got, errors.Unwrap(got))
	}
}

func TestProductMapCheck(t *testing.T) {
	numeric := func(id string) error {
		if !IsNumericID(id) {
			return fmt.Errorf("item %q is not a number", id)
		}
		return nil
	}
	tests := []struct {
		name   string
		m      ProductMap
		unique bool
		want   string // the error; "" when accepted
	}{
		{"none", nil, true, ""},
		{"ok", ProductMap{{"a", "1"}, {"b", "2"}, {"a", "3"}}, true, ""},
		{"empty slug", ProductMap{{"a", "1"}, {"", "2"}}, true, `item "2": the product slug is empty`},
		{"id refused", ProductMap{{"a", "x1"}}, true, `product a: item "x1" is not a number`},
		{"id twice for one product", ProductMap{{"a", "1"}, {"a", "1"}}, true, ""},
		{"id for two products", ProductMap{{"a", "1"}, {"b", "1"}}, true, "item 1 is given to both a and b"},
		{"id for two products, allowed", ProductMap{{"a", "1"}, {"b", "1"}}, false, ""},
	}
	for _, tt := range tests {
		err := tt.m.Check("item", tt.unique, numeric)
		if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestIsNumericID(t *testing.T) {
	for _, ok := range []string{"1", "17022701", "9223372036854775807"} {
		if !IsNumericID(ok) {
			t.Errorf("IsNumericID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "0", "017022701", "-1", "1.5", "1e7", " 1", "12345678901234567890", "\uff11"} {
		if IsNumericID(bad) {
			t.Errorf("IsNumericID(%q) = true", bad)
		}
	}
}

// Every request through a Client with a budget spends one call of it; past
// MaxWait the request is refused unsent with a *BudgetError.
func TestClientSpendsItsBudget(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	budget := NewBudget(Rate{Calls: 2, Period: time.Minute}, 2, time.Second, newFakeClock())
	c, _ := NewClient(Client{HTTP: srv.Client(), Budget: budget})
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		_, err := c.Do(context.Background(), req)
		var be *BudgetError
		switch {
		case i < 2 && err != nil:
			t.Fatalf("request %d: %v", i, err)
		case i == 2 && (!errors.As(err, &be) || !errors.Is(err, ErrRateBudget) || be.Wait < 29*time.Second):
			t.Fatalf("request past the budget: %v, want a BudgetError of about 30s", err)
		}
	}
	if hits.Load() != 2 || budget.Spent() != 2 {
		t.Fatalf("%d requests sent, %d calls spent; want 2 and 2", hits.Load(), budget.Spent())
	}
}

// Issue 20, N2: a vendor answering a redirect is never followed (the POST
// and its key would go wherever it points); the 3xx is an error that names
// where it pointed without the query.
func TestDoNeverFollowsRedirects(t *testing.T) {
	var hit atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer target.Close()
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target.URL+"/stop?license_key=SECRET")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer vendor.Close()
	c, err := NewClient(Client{HTTP: vendor.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{"POST", "GET"} {
		req, _ := http.NewRequest(status, vendor.URL+"/verify", strings.NewReader("license_key=SECRET"))
		_, err = c.Do(context.Background(), req)
		var re *RedirectError
		if !errors.As(err, &re) || re.Status != http.StatusTemporaryRedirect {
			t.Fatalf("%s: err %v, want a *RedirectError for 307", status, err)
		}
		if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), target.URL+"/stop") {
			t.Fatalf("error %q: want the target without its query", err)
		}
	}
	if n := hit.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
	if v := Unavailable("vendor", nil, err); v.Outcome != Unknown {
		t.Fatalf("a redirect is %v, want unknown", v.Outcome)
	}
}

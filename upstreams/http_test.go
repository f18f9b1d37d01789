package upstreams

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	_, err := Do(context.Background(), srv.Client(), req, 1<<20)
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
	if _, err := Do(context.Background(), srv.Client(), req, 1<<20); !errors.Is(err, ErrBodyTooLarge) {
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

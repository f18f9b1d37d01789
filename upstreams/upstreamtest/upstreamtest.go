// Package upstreamtest runs the scenarios every HTTP source adapter
// must answer alike, whatever its vendor: outages, rate limits, oversized
// and unreadable answers, a closed server, a caller giving up, and the
// base_url values New refuses. Each adapter's own tests keep what is
// particular to its vendor.
package upstreamtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Target is what a case's source must be built with: its Config's
// BaseURL, and its Client's HTTP client, body limit and clock.
type Target struct {
	BaseURL string
	Client  *http.Client
	MaxBody int64
	Now     func() time.Time
}

// UpstreamClient is the adapter's Client for the case (without a budget).
func (t Target) UpstreamClient() upstreams.Client {
	return upstreams.Client{HTTP: t.Client, MaxBody: t.MaxBody, Now: t.Now}
}

// Now is the time Target.Now tells; a Retry-After date is relative to it.
var Now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// MaxBody is the body limit Target carries; the oversized answers are
// four times larger.
const MaxBody = 1024

// RunOutageCases checks, in one subtest a case, that a source newSource
// builds for the case's Target answers req Unknown, with a cause of the
// expected kind that does not quote req.Key, when its vendor:
//
//   - answers HTTP 500, 502, 503 (its Retry-After is no rate limit) or 204;
//   - answers 429 with Retry-After in seconds, as a date, or without one
//     (the verdict's RetryAfter is what the vendor asked for);
//   - sends more than MaxBody bytes, announced or chunked;
//   - answers 200 with truncated JSON, an HTML page or JSON null;
//   - cannot be reached (its server is closed);
//   - is too slow for the caller's deadline, or the caller gave up
//     before asking.
//
// The source must ask exactly once for req (e.g. req names one product),
// through Target.Client.
func RunOutageCases(t *testing.T, newSource func(t *testing.T, target Target) upstreams.Source, req upstreams.Request) {
	t.Helper()
	for _, c := range []struct {
		name    string
		serve   http.HandlerFunc
		status  int           // the cause is a StatusError for it
		limited bool          // the cause is a RateLimitError asking for retry
		retry   time.Duration // the verdict's RetryAfter
		is      error         // the cause wraps it
	}{
		{name: "HTTP 500", serve: reply(500, nil, `{"error":"Server Error"}`), status: 500},
		{name: "HTTP 502", serve: reply(502, nil, "bad gateway"), status: 502},
		{name: "HTTP 503 with Retry-After", serve: reply(503, map[string]string{"Retry-After": "120"}, ""), status: 503},
		{name: "HTTP 204", serve: reply(204, nil, ""), status: 204},
		{
			name:    "HTTP 429 with Retry-After: 30",
			serve:   reply(429, map[string]string{"Retry-After": "30"}, `{"message":"Too Many Attempts."}`),
			limited: true, retry: 30 * time.Second,
		},
		{
			name:    "HTTP 429 with a Retry-After date",
			serve:   reply(429, map[string]string{"Retry-After": Now.Add(2 * time.Minute).Format(http.TimeFormat)}, ""),
			limited: true, retry: 2 * time.Minute,
		},
		{name: "HTTP 429 without Retry-After", serve: reply(429, nil, ""), limited: true},
		{name: "body over MaxBody, Content-Length announced", serve: oversized(true), is: upstreams.ErrBodyTooLarge},
		{name: "body over MaxBody, chunked", serve: oversized(false), is: upstreams.ErrBodyTooLarge},
		{name: "unparseable JSON", serve: reply(200, nil, `{"valid": true, "data": {`)},
		{name: "HTML with 200", serve: reply(200, map[string]string{"Content-Type": "text/html"}, "<html>maintenance</html>")},
		{name: "JSON null", serve: reply(200, nil, "null")},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := NewServer(t, func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				c.serve(w, r)
			})
			src, sent := build(t, newSource, srv.URL)
			v := src.Verify(context.Background(), req)
			var cause func(error) bool
			switch {
			case c.status != 0:
				cause = IsStatusError(src.Name(), c.status)
			case c.limited:
				cause = IsRateLimit(src.Name(), c.retry)
			case c.is != nil:
				cause = func(err error) bool { return errors.Is(err, c.is) }
			}
			checkUnknown(t, v, req.Key, cause, c.retry)
			if n, m := hits.Load(), sent.Load(); n != 1 || m != 1 {
				t.Errorf("%d requests served, %d sent through Target.Client; want 1", n, m)
			}
		})
	}

	t.Run("server closed", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		src, sent := build(t, newSource, srv.URL)
		v := src.Verify(context.Background(), req)
		checkUnknown(t, v, req.Key, nil, 0)
		if sent.Load() != 1 {
			t.Errorf("%d requests sent through Target.Client, want 1", sent.Load())
		}
	})

	t.Run("deadline passes while waiting", func(t *testing.T) {
		var hits atomic.Int32
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		src, _ := build(t, newSource, srv.URL)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		v := src.Verify(ctx, req)
		checkUnknown(t, v, req.Key, nil, 0)
		if !errors.Is(v.Cause, context.DeadlineExceeded) {
			t.Errorf("cause %v does not wrap context.DeadlineExceeded", v.Cause)
		}
		if hits.Load() != 1 {
			t.Errorf("%d requests, want 1: none after the deadline", hits.Load())
		}
	})

	t.Run("caller gave up before asking", func(t *testing.T) {
		var hits atomic.Int32
		srv := NewServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
		src, _ := build(t, newSource, srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		v := src.Verify(ctx, req)
		checkUnknown(t, v, req.Key, nil, 0)
		if !errors.Is(v.Cause, context.Canceled) {
			t.Errorf("cause %v does not wrap context.Canceled", v.Cause)
		}
		if hits.Load() != 0 {
			t.Errorf("%d requests for a cancelled caller", hits.Load())
		}
	})
}

// RunBaseURLCases checks that New refuses the base_url values no adapter
// accepts, naming the option, and accepts absolute http and https URLs,
// with or without a path prefix. newSource calls New with baseURL and an
// otherwise valid Config and returns its error.
func RunBaseURLCases(t *testing.T, newSource func(baseURL string) error) {
	t.Helper()
	for _, c := range []struct{ name, url, want string }{
		{"no base_url", "", "base_url is required"},
		{"no scheme", "api.example.com", "base_url"},
		{"missing scheme", "://api.example.com", "base_url"},
		{"ftp", "ftp://api.example.com", "base_url"},
		{"no host", "https://", "base_url"},
		{"no host, a path", "http:///api", "base_url"},
		{"query", "https://api.example.com/?x=1", "base_url"},
		{"fragment", "https://api.example.com/#x", "base_url"},
		{"unparseable", "https://api.example.com/%zz", "base_url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := newSource(c.url)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("base_url %q: error %v, want one containing %q", c.url, err, c.want)
			}
		})
	}
	for _, raw := range []string{"https://api.example.com", "http://127.0.0.1:8080/", "https://api.example.com/staging/"} {
		if err := newSource(raw); err != nil {
			t.Errorf("base_url %q refused: %v", raw, err)
		}
	}
}

// build makes the case's source against baseURL; sent counts the requests
// it sends through Target.Client.
func build(t *testing.T, newSource func(*testing.T, Target) upstreams.Source, baseURL string) (upstreams.Source, *atomic.Int32) {
	t.Helper()
	sent := new(atomic.Int32)
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	target := Target{BaseURL: baseURL, Client: client, MaxBody: MaxBody, Now: func() time.Time { return Now }}
	return newSource(t, target), sent
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// checkUnknown checks what every case's verdict shares: Unknown, nothing
// else set, a cause of the kind cause accepts that does not quote the key,
// and RetryAfter as the vendor asked.
func checkUnknown(t *testing.T, v upstreams.Verdict, key string, cause func(error) bool, retry time.Duration) {
	t.Helper()
	CheckVerdict(t, v, upstreams.Unknown, "", upstreams.Record{})
	CheckCause(t, v, key, cause, retry)
}

func reply(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { Write(w, status, header, body, "application/json") }
}

// oversized answers 200 with a JSON body four times MaxBody, its length
// announced, or chunked so that the limit must hold while reading.
func oversized(announced bool) http.HandlerFunc {
	body := `{"valid": true, "padding": "` + strings.Repeat("x", 4*MaxBody) + `"}`
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if announced {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		} else {
			w.(http.Flusher).Flush()
		}
		_, _ = w.Write([]byte(body))
	}
}

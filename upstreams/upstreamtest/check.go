package upstreamtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// CheckVerdict checks v's outcome, reason and, when Valid, record (times
// compared as instants, and in UTC); a verdict that is not Valid must
// carry no record.
func CheckVerdict(t *testing.T, v upstreams.Verdict, outcome upstreams.Outcome, reason upstreams.Reason, rec upstreams.Record) {
	t.Helper()
	if v.Outcome != outcome {
		t.Fatalf("outcome %s (reason %q, cause %v), want %s", v.Outcome, v.Reason, v.Cause, outcome)
	}
	if v.Reason != reason {
		t.Errorf("reason %q, want %q", v.Reason, reason)
	}
	if outcome != upstreams.Valid {
		if !reflect.DeepEqual(v.Record, upstreams.Record{}) {
			t.Errorf("record %+v set on a %s verdict", v.Record, outcome)
		}
		return
	}
	got := v.Record
	if got.Product != rec.Product {
		t.Errorf("Product %q, want %q", got.Product, rec.Product)
	}
	if got.Type != rec.Type {
		t.Errorf("Type %q, want %q", got.Type, rec.Type)
	}
	if got.LicensedTo != rec.LicensedTo {
		t.Errorf("LicensedTo %q, want %q", got.LicensedTo, rec.LicensedTo)
	}
	checkTime(t, "ExpiresAt", got.ExpiresAt, rec.ExpiresAt)
	checkTime(t, "SupportUntil", got.SupportUntil, rec.SupportUntil)
	if got.Retired != rec.Retired {
		t.Errorf("Retired %v, want %v", got.Retired, rec.Retired)
	}
	if got.ActivationsLimit != rec.ActivationsLimit {
		t.Errorf("ActivationsLimit %d, want %d", got.ActivationsLimit, rec.ActivationsLimit)
	}
	if got.VendorID != rec.VendorID {
		t.Errorf("VendorID %q, want %q", got.VendorID, rec.VendorID)
	}
	if rec.Refs != nil && !reflect.DeepEqual(got.Refs, rec.Refs) {
		t.Errorf("Refs %v, want %v", got.Refs, rec.Refs)
	}
}

// RecheckAsVerify is src whose Verify makes its Recheck call instead, with
// the request's key, product, domain and IP and vendorID, so that
// RunOutageCases can run against a source's recheck.
func RecheckAsVerify(src interface {
	upstreams.Source
	upstreams.Rechecker
}, vendorID string) upstreams.Source {
	return recheckAsVerify{src: src, vendorID: vendorID}
}

type recheckAsVerify struct {
	src interface {
		upstreams.Source
		upstreams.Rechecker
	}
	vendorID string
}

func (r recheckAsVerify) Name() string                            { return r.src.Name() }
func (r recheckAsVerify) CanonicalKey(key string) (string, error) { return r.src.CanonicalKey(key) }
func (r recheckAsVerify) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	return r.src.Recheck(ctx, upstreams.RecheckRequest{Key: req.Key, Product: req.Product, Domain: req.Domain, IP: req.IP, VendorID: r.vendorID})
}

func checkTime(t *testing.T, field string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil || want == nil:
		if got != want {
			t.Errorf("%s %v, want %v", field, got, want)
		}
	case !got.Equal(*want):
		t.Errorf("%s %v, want %v", field, got, want)
	case got.Location() != time.UTC:
		t.Errorf("%s %v is not in UTC", field, got)
	}
}

// CheckCause checks what a table case expects beyond CheckVerdict: an
// Unknown verdict has a cause, of the kind cause accepts (nil accepts
// any), that does not quote key anywhere in its chain; and any verdict's
// RetryAfter is retry.
func CheckCause(t *testing.T, v upstreams.Verdict, key string, cause func(error) bool, retry time.Duration) {
	t.Helper()
	if v.Outcome == upstreams.Unknown {
		if v.Cause == nil {
			t.Fatal("Unknown without a cause")
		}
		if cause != nil && !cause(v.Cause) {
			t.Errorf("cause %v (%T) is not the expected kind", v.Cause, v.Cause)
		}
		for err := v.Cause; err != nil; err = errors.Unwrap(err) {
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(key)) {
				t.Errorf("cause %q holds the licence key", err)
			}
		}
	}
	if v.RetryAfter != retry {
		t.Errorf("RetryAfter %s, want %s", v.RetryAfter, retry)
	}
}

// IsStatusError accepts an *upstreams.StatusError of source for status.
func IsStatusError(source string, status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.StatusError
		return errors.As(err, &e) && e.Status == status && e.Source == source
	}
}

// IsRedirect accepts an *upstreams.RedirectError for status: a vendor's
// 3xx, never followed.
func IsRedirect(status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.RedirectError
		return errors.As(err, &e) && e.Status == status
	}
}

// IsAuthorError accepts an *upstreams.AuthorCredentialError of source for
// status.
func IsAuthorError(source string, status int) func(error) bool {
	return func(err error) bool {
		var e *upstreams.AuthorCredentialError
		return errors.As(err, &e) && e.Status == status && e.Source == source
	}
}

// IsRateLimit accepts an *upstreams.RateLimitError of source asking to
// retry after d.
func IsRateLimit(source string, d time.Duration) func(error) bool {
	return func(err error) bool {
		var e *upstreams.RateLimitError
		return errors.As(err, &e) && e.RetryAfter == d && e.Source == source
	}
}

// CheckCanonicalKey checks src.CanonicalKey on each case, {input, want}:
// an empty want expects a refusal wrapping upstreams.ErrKeyFormat, with
// no key returned.
func CheckCanonicalKey(t *testing.T, src upstreams.Source, cases [][2]string) {
	t.Helper()
	for _, c := range cases {
		in, want := c[0], c[1]
		got, err := src.CanonicalKey(in)
		if want == "" {
			if !errors.Is(err, upstreams.ErrKeyFormat) || got != "" {
				t.Errorf("CanonicalKey(%q) = %q, %v; want an ErrKeyFormat refusal", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("CanonicalKey(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// Time parses an RFC 3339 time and returns it in UTC, as adapters report
// times; it panics on a malformed one.
func Time(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	t = t.UTC()
	return &t
}

// NewServer starts a vendor fake serving h, closed when the test ends.
func NewServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// Write answers a vendor fake's request with status, header and body; a
// body with no Content-Type in header is sent as contentType.
func Write(w http.ResponseWriter, status int, header map[string]string, body, contentType string) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" && body != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Build returns newSource(cfg), an adapter's New, once each mod that is
// not nil has changed cfg, and fails the test if New refuses it.
func Build[C, S any](t *testing.T, newSource func(C) (S, error), cfg C, mods ...func(*C)) S {
	t.Helper()
	for _, mod := range mods {
		if mod != nil {
			mod(&cfg)
		}
	}
	s, err := newSource(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

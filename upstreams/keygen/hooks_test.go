package keygen

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/hooktest"
)

// The fixed key of TestHooksKnownSignature: RFC 8032's first Ed25519 test
// vector, whose public key is published with it.
const (
	rfc8032Seed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

const (
	hookLicenceID = "b18e3f3a-330c-4d8d-ae2e-014db21fa827"
	hookKey       = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3"
	endpointURL   = "https://licences.example.com/hooks/keygen"
)

// sentAt is when the tests' deliveries are signed.
var sentAt = time.Date(2026, 3, 1, 11, 58, 41, 0, time.UTC)

// keygenSigner signs deliveries the way Keygen's WebhookWorker does, with
// a key pair made for the test.
type keygenSigner struct {
	priv ed25519.PrivateKey
	pub  string // hex, as the dashboard shows it
}

func newSigner(t testing.TB) keygenSigner {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return keygenSigner{priv: priv, pub: hex.EncodeToString(pub)}
}

// delivery is the request Keygen sends to endpoint with body at date,
// signed over signedHost (Keygen's is the endpoint URL's host without a
// port: URI#host, which keeps an IPv6 literal's brackets).
func (s keygenSigner) delivery(t testing.TB, endpoint string, body []byte, date time.Time, signedHost string) upstreams.HookRequest {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if signedHost == "" {
		signedHost = u.Hostname()
		if strings.Contains(signedHost, ":") {
			signedHost = "[" + signedHost + "]"
		}
	}
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	sum := sha256.Sum256(body)
	digest := "sha-256=" + base64.StdEncoding.EncodeToString(sum[:])
	httpdate := date.UTC().Format(http.TimeFormat)
	data := strings.Join([]string{
		"(request-target): post " + target,
		"host: " + signedHost,
		"date: " + httpdate,
		"digest: " + digest,
	}, "\n")
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, []byte(data)))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Date", httpdate)
	h.Set("Digest", digest)
	h.Set("Keygen-Date", httpdate)
	h.Set("Keygen-Digest", digest)
	h.Set("Keygen-Signature", `keyid="1fddcec8-8dd3-4d8d-9b16-215cac0f9b52", algorithm="ed25519", signature="`+sig+`", headers="(request-target) host date digest"`)
	// what the handler passes: the request-target as received and the
	// Host header, which carries the endpoint URL's port when it has one
	return upstreams.HookRequest{Method: http.MethodPost, Target: target, Host: u.Host, Header: h, Body: body}
}

func (s keygenSigner) hooks(t testing.TB) *Hooks {
	t.Helper()
	h, err := NewHooks(s.pub)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHooksDocumentedPayloads(t *testing.T) {
	s := newSigner(t)
	h := s.hooks(t)
	licence := []upstreams.VendorID{{Kind: upstreams.IDLicence, ID: hookLicenceID}}
	tests := []struct {
		file    string
		want    upstreams.Hook
		wantErr error
	}{
		{file: "license_suspended.json", want: upstreams.Hook{Source: Name, Event: "license.suspended",
			DeliveryID: "e8f2b1a0-7c1d-4c3e-9f5a-2b6d8e0c4a11", At: sentAt, Key: hookKey, VendorIDs: licence}},
		{file: "license_renewed.json", want: upstreams.Hook{Source: Name, Event: "license.renewed",
			DeliveryID: "0b7c3d2e-1f4a-4b5c-8d9e-6f7a8b9c0d1e", At: sentAt, Key: hookKey, VendorIDs: licence}},
		{
			// sent on every validation: no change a recheck would see
			file:    "license_validation_succeeded.json",
			want:    upstreams.Hook{Source: Name, Event: "license.validation.succeeded", DeliveryID: "5d4c3b2a-1e0f-4a9b-8c7d-6e5f4a3b2c1d", At: sentAt},
			wantErr: upstreams.ErrHookIgnored,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			req := s.delivery(t, endpointURL, hooktest.Fixture(t, tt.file), sentAt, "")
			got, err := h.Verify(req, sentAt.Add(2*time.Second))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if !got.At.Equal(tt.want.At) {
				t.Errorf("At = %v, want %v", got.At, tt.want.At)
			}
			got.At = tt.want.At
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Verify = %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestHooksKnownSignature(t *testing.T) {
	// A signature made outside Go: openssl pkeyutl -sign -rawin with the
	// RFC 8032 key, over Keygen's signing string for license_suspended.json
	// delivered to https://licences.example.com/hooks/keygen at sentAt.
	const (
		digest    = "sha-256=5IzLDjiyR9gMDrjURxmPwvClfew8t0hYyFrsW5DJ+Fg="
		signature = "s1hUh1rYGLbjTSJHZV7jeLFhC1spsfvFaouuTZzAeUa1XIBYz8Nd9PvMWmNDT8KV5fh7RQBPvBWhYKP9fKUYCg=="
	)
	seed, _ := hex.DecodeString(rfc8032Seed)
	if got := hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)); got != rfc8032Public {
		t.Fatalf("the RFC 8032 seed gives public key %s", got)
	}
	h, err := NewHooks(strings.ToUpper(rfc8032Public)) // hex in either case
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	header.Set("Date", "Sun, 01 Mar 2026 11:58:41 GMT")
	header.Set("Digest", digest)
	header.Set("Keygen-Signature", `keyid="1fddcec8-8dd3-4d8d-9b16-215cac0f9b52", algorithm="ed25519", signature="`+signature+`", headers="(request-target) host date digest"`)
	req := upstreams.HookRequest{Method: "POST", Target: "/hooks/keygen", Host: "licences.example.com", Header: header, Body: hooktest.Fixture(t, "license_suspended.json")}
	got, err := h.Verify(req, sentAt)
	if err != nil || got.Event != "license.suspended" || got.Key != hookKey {
		t.Fatalf("Verify = %v, %v", got, err)
	}
}

func TestHooksRefused(t *testing.T) {
	s := newSigner(t)
	h := s.hooks(t)
	body := hooktest.Fixture(t, "license_suspended.json")
	now := sentAt.Add(time.Second)
	good := func() upstreams.HookRequest { return s.delivery(t, endpointURL, body, sentAt, "") }
	tampered := []byte(strings.Replace(string(body), "license.suspended", "license.reinstated", 1))
	tests := []struct {
		name   string
		mutate func(r *upstreams.HookRequest)
		want   error
	}{
		{"tampered body", func(r *upstreams.HookRequest) { r.Body = tampered }, upstreams.ErrHookSignature},
		{"tampered body with its own digest", func(r *upstreams.HookRequest) {
			r.Body = tampered
			sum := sha256.Sum256(tampered)
			r.Header.Set("Digest", "sha-256="+base64.StdEncoding.EncodeToString(sum[:]))
		}, upstreams.ErrHookSignature},
		{"wrong key", func(r *upstreams.HookRequest) {
			*r = newSigner(t).delivery(t, endpointURL, body, sentAt, "")
		}, upstreams.ErrHookSignature},
		{"date changed", func(r *upstreams.HookRequest) {
			r.Header.Set("Date", sentAt.Add(time.Minute).Format(http.TimeFormat))
		}, upstreams.ErrHookSignature},
		{"another path", func(r *upstreams.HookRequest) { r.Target = "/keygen" }, upstreams.ErrHookSignature},
		{"another host", func(r *upstreams.HookRequest) { r.Host = "evil.example.com" }, upstreams.ErrHookSignature},
		{"another method", func(r *upstreams.HookRequest) { r.Method = "PUT" }, upstreams.ErrHookSignature},
		{"no signature", func(r *upstreams.HookRequest) { r.Header.Del("Keygen-Signature") }, upstreams.ErrHookSignature},
		{"no digest", func(r *upstreams.HookRequest) { r.Header.Del("Digest"); r.Header.Del("Keygen-Digest") }, upstreams.ErrHookSignature},
		{"another digest algorithm", func(r *upstreams.HookRequest) {
			r.Header.Set("Digest", strings.Replace(r.Header.Get("Digest"), "sha-256=", "sha-512=", 1))
		}, upstreams.ErrHookSignature},
		{"rsa signature", func(r *upstreams.HookRequest) { replaceInSignature(r, `"ed25519"`, `"rsa-pss-sha256"`) }, upstreams.ErrHookSignature},
		{"fewer signed headers", func(r *upstreams.HookRequest) {
			replaceInSignature(r, `"(request-target) host date digest"`, `"(request-target) host date"`)
		}, upstreams.ErrHookSignature},
		{"a parameter twice", func(r *upstreams.HookRequest) {
			r.Header.Set("Keygen-Signature", r.Header.Get("Keygen-Signature")+`, algorithm="ed25519"`)
		}, upstreams.ErrHookSignature},
		{"unquoted parameter", func(r *upstreams.HookRequest) { replaceInSignature(r, `algorithm="ed25519"`, `algorithm=ed25519`) }, upstreams.ErrHookSignature},
		{"signature not base64", func(r *upstreams.HookRequest) {
			r.Header.Set("Keygen-Signature", `algorithm="ed25519", signature="!!", headers="(request-target) host date digest"`)
		}, upstreams.ErrHookSignature},
		{"no date", func(r *upstreams.HookRequest) { r.Header.Del("Date"); r.Header.Del("Keygen-Date") }, upstreams.ErrHookSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good()
			sent := req.Header.Get("Keygen-Signature")
			tt.mutate(&req)
			hooktest.Refused(t, h, req, now, tt.want, hookKey, sent)
		})
	}
}

// replaceInSignature edits the Keygen-Signature header of r.
func replaceInSignature(r *upstreams.HookRequest, old, new string) {
	r.Header.Set("Keygen-Signature", strings.Replace(r.Header.Get("Keygen-Signature"), old, new, 1))
}

func TestHooksTimeWindow(t *testing.T) {
	s := newSigner(t)
	h := s.hooks(t)
	req := s.delivery(t, endpointURL, hooktest.Fixture(t, "license_suspended.json"), sentAt, "")
	for _, tt := range []struct {
		now  time.Time
		want error
	}{
		{sentAt, nil},
		{sentAt.Add(upstreams.HookWindow), nil},
		{sentAt.Add(-upstreams.HookWindow), nil}, // our clock behind Keygen's
		{sentAt.Add(upstreams.HookWindow + time.Second), upstreams.ErrHookStale},
		{sentAt.Add(-upstreams.HookWindow - time.Second), upstreams.ErrHookStale},
		{sentAt.Add(24 * time.Hour), upstreams.ErrHookStale},
	} {
		got, err := h.Verify(req, tt.now)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Verify at %v: error = %v, want %v", tt.now.Sub(sentAt), err, tt.want)
		}
		if tt.want != nil && got.Names() {
			t.Errorf("Verify at %v: a stale hook names %v", tt.now.Sub(sentAt), got)
		}
	}
}

func TestHooksHostAndPort(t *testing.T) {
	// Keygen signs the endpoint URL's host without its port (SPEC 7;
	// URI.parse(endpoint.url).host in WebhookWorker), while the Host header
	// the request arrives with keeps the port.
	s := newSigner(t)
	h := s.hooks(t)
	body := hooktest.Fixture(t, "license_suspended.json")
	now := sentAt.Add(time.Second)
	tests := []struct {
		name       string
		endpoint   string
		signedHost string // "": as Keygen does
		host       string // "": the endpoint URL's host:port
		ok         bool
	}{
		{name: "no port", endpoint: endpointURL, ok: true},
		{name: "port in the Host header, not in the signature", endpoint: "https://licences.example.com:8443/hooks/keygen", ok: true},
		{name: "a signature over host:port is not Keygen's", endpoint: "https://licences.example.com:8443/hooks/keygen", signedHost: "licences.example.com:8443"},
		{name: "IPv6 literal with a port", endpoint: "https://[2001:db8::1]:8443/hooks/keygen", ok: true},
		{name: "IPv6 literal without a port", endpoint: "https://[2001:db8::1]/hooks/keygen", ok: true},
		{name: "query kept in the target", endpoint: endpointURL + "?tenant=acme", ok: true},
		{name: "host named by a proxy, not the endpoint's", endpoint: endpointURL, host: "127.0.0.1:2019"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := s.delivery(t, tt.endpoint, body, sentAt, tt.signedHost)
			if tt.host != "" {
				req.Host = tt.host
			}
			_, err := h.Verify(req, now)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, upstreams.ErrHookSignature) {
				t.Fatalf("Verify error = %v, want ErrHookSignature", err)
			}
		})
	}
}

func TestHooksKeygenHeadersOnly(t *testing.T) {
	// a proxy that drops Date and Digest leaves Keygen-Date and
	// Keygen-Digest, which carry the same values
	s := newSigner(t)
	req := s.delivery(t, endpointURL, hooktest.Fixture(t, "license_suspended.json"), sentAt, "")
	req.Header.Del("Date")
	req.Header.Del("Digest")
	if _, err := s.hooks(t).Verify(req, sentAt); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestHooksMalformedAfterVerification(t *testing.T) {
	s := newSigner(t)
	h := s.hooks(t)
	for _, body := range []string{
		`not json`,
		`{"data":{"type":"licenses","attributes":{"event":"license.suspended"}}}`,
		`{"data":{"type":"webhook-events","attributes":{"event":""}}}`,
		`{"data":{"type":"webhook-events","attributes":{"event":"license.suspended"}}}`,
		`{"data":{"type":"webhook-events","attributes":{"event":"license.suspended","payload":"{not json"}}}`,
		`{"data":{"type":"webhook-events","attributes":{"event":"license.suspended","payload":{"data":{}}}}}`,
	} {
		_, err := h.Verify(s.delivery(t, endpointURL, []byte(body), sentAt, ""), sentAt)
		if !errors.Is(err, upstreams.ErrHookMalformed) {
			t.Errorf("Verify(%s) error = %v, want ErrHookMalformed", body, err)
		}
	}
}

func TestHooksIgnored(t *testing.T) {
	s := newSigner(t)
	h := s.hooks(t)
	for _, body := range []string{
		`{"data":{"id":"ev-1","type":"webhook-events","attributes":{"event":"machine.created","payload":"{\"data\":{\"type\":\"machines\"}}"}}}`,
		`{"data":{"id":"ev-2","type":"webhook-events","attributes":{"event":"license.usage.incremented","payload":"{}"}}}`,
		`{"data":{"id":"ev-3","type":"webhook-events","attributes":{"event":"license.updated","payload":"{\"data\":{\"type\":\"policies\",\"id\":\"p\"}}"}}}`,
		`{"data":{"id":"ev-4","type":"webhook-events","attributes":{"event":"license.deleted","payload":"{\"data\":{\"type\":\"licenses\",\"id\":null,\"attributes\":{}}}"}}}`,
	} {
		got, err := h.Verify(s.delivery(t, endpointURL, []byte(body), sentAt, ""), sentAt)
		if !errors.Is(err, upstreams.ErrHookIgnored) {
			t.Errorf("Verify(%s) error = %v, want ErrHookIgnored", body, err)
		}
		if got.Event == "" || got.DeliveryID == "" || got.Names() {
			t.Errorf("Verify(%s) = %v: an ignored hook keeps its event and delivery and names nothing", body, got)
		}
	}
}

func TestNewHooksKey(t *testing.T) {
	for _, key := range []string{"", "zz", rfc8032Public[:62], rfc8032Public + "00", "-----BEGIN PUBLIC KEY-----"} {
		if _, err := NewHooks(key); err == nil {
			t.Errorf("NewHooks(%q) accepted", key)
		}
	}
	if _, err := NewHooks(" " + rfc8032Public + "\n"); err != nil {
		t.Errorf("NewHooks with spaces around: %v", err)
	}
}

func TestHostWithoutPort(t *testing.T) {
	for in, want := range map[string]string{
		"licences.example.com":      "licences.example.com",
		"licences.example.com:8443": "licences.example.com",
		"[2001:db8::1]:8443":        "[2001:db8::1]",
		"[2001:db8::1]":             "[2001:db8::1]",
		"2001:db8::1":               "2001:db8::1",
		"":                          "",
		"[broken":                   "[broken",
	} {
		if got := hostWithoutPort(in); got != want {
			t.Errorf("hostWithoutPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseHook(f *testing.F) {
	for _, name := range []string{"license_suspended.json", "license_renewed.json", "license_validation_succeeded.json"} {
		f.Add(hooktest.Fixture(f, name))
	}
	f.Add([]byte(`{"data":{"id":1e9,"type":"webhook-events","attributes":{"event":"license.revoked","payload":"{\"data\":{\"type\":\"licenses\",\"id\":7,\"attributes\":{\"key\":\"\\u0000\"}}}"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseHook(body)
		if err != nil {
			if !errors.Is(err, upstreams.ErrHookMalformed) && !errors.Is(err, upstreams.ErrHookIgnored) {
				t.Fatalf("error %v is neither malformed nor ignored", err)
			}
			if got.Names() {
				t.Fatalf("%v names %v", err, got)
			}
			return
		}
		if !got.Names() || !licenceEvents[got.Event] {
			t.Fatalf("accepted %v", got)
		}
		if len(got.Key) > upstreams.MaxAnyKeyLength || len(got.DeliveryID) > 128 {
			t.Fatalf("unbounded %v", got)
		}
	})
}

func FuzzSignatureHeader(f *testing.F) {
	f.Add(`keyid="1fddcec8", algorithm="ed25519", signature="` + strings.Repeat("A", 86) + `==", headers="(request-target) host date digest"`)
	f.Add(`algorithm="ed25519",,`)
	f.Add(`="",=""`)
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := parseSignature(header)
		if err == nil && len(sig) != ed25519.SignatureSize {
			t.Fatalf("parseSignature(%q) gave %d bytes", header, len(sig))
		}
	})
}

package httpapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/gateway"
)

func TestDecodeBody(t *testing.T) {
	cases := []struct {
		name, ct, body string
		want           map[string]string
		code           string
	}{
		{"json", "application/json", `{"license_key":"k","domain":"d"}`, map[string]string{"license_key": "k", "domain": "d"}, ""},
		{"json charset", "application/json; charset=utf-8", `{"a":"b"}`, map[string]string{"a": "b"}, ""},
		{"json null ignored", "application/json", `{"a":null,"b":"c"}`, map[string]string{"b": "c"}, ""},
		{"json empty body", "application/json", ``, map[string]string{}, ""},
		{"json number", "application/json", `{"a":1}`, nil, gateway.CodeValidationFailed},
		{"json array", "application/json", `[1,2]`, nil, gateway.CodeMalformedRequest},
		{"json broken", "application/json", `{"a":`, nil, gateway.CodeMalformedRequest},
		{"form", "application/x-www-form-urlencoded", `a=b&c=d%20e`, map[string]string{"a": "b", "c": "d e"}, ""},
		{"no content type is a form", "", `a=b`, map[string]string{"a": "b"}, ""},
		{"form repeated field", "application/x-www-form-urlencoded", `a=b&a=c`, nil, gateway.CodeValidationFailed},
		{"form bad escape", "application/x-www-form-urlencoded", `a=%zz`, nil, gateway.CodeMalformedRequest},
		{"field too long", "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", maxField+1), nil, gateway.CodeValidationFailed},
		// PHP's CURLOPT_POSTFIELDS => json_encode(...) without a header.
		{"json sent as a form", "application/x-www-form-urlencoded", `{"license_key":"k","domain":"d"}`, map[string]string{"license_key": "k", "domain": "d"}, ""},
		{"json with no content type", "", " \n{\"license_key\":\"k\"}", map[string]string{"license_key": "k"}, ""},
		{"broken json sent as a form", "application/x-www-form-urlencoded", `{"a":`, nil, gateway.CodeMalformedRequest},
		// PHP's CURLOPT_POSTFIELDS => ['license_key' => ..., ...].
		{"multipart", "multipart/form-data; boundary=XyZ", multipartBody("XyZ", `name="license_key"`, "k", `name="domain"`, "d"), map[string]string{"license_key": "k", "domain": "d"}, ""},
		{"multipart repeated field", "multipart/form-data; boundary=XyZ", multipartBody("XyZ", `name="a"`, "1", `name="a"`, "2"), nil, gateway.CodeValidationFailed},
		{"multipart file", "multipart/form-data; boundary=XyZ", multipartBody("XyZ", `name="a"; filename="x.txt"`, "1"), nil, gateway.CodeMalformedRequest},
		{"multipart without boundary", "multipart/form-data", "x", nil, gateway.CodeMalformedRequest},
		{"multipart truncated", "multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb", nil, gateway.CodeMalformedRequest},
		{"multipart field too long", "multipart/form-data; boundary=XyZ", multipartBody("XyZ", `name="a"`, strings.Repeat("x", maxField+1)), nil, gateway.CodeValidationFailed},
		{"xml", "application/xml", `<a/>`, nil, gateway.CodeUnsupportedMedia},
		{"bad media type", "a/b; ===", `x`, nil, gateway.CodeUnsupportedMedia},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeBody(c.ct, []byte(c.body))
			if c.code != "" {
				var e *gateway.Error
				if !errors.As(err, &e) || e.Code != c.code {
					t.Fatalf("err %v, want code %s", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Fatalf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestActivateRequestAlias(t *testing.T) {
	r, err := activateRequest(map[string]string{"purchase_code": "pc", "domain": "d"})
	if err != nil || r.Key != "pc" || r.Domain != "d" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := activateRequest(map[string]string{"purchase_code": "a", "license_key": "b"}); err == nil {
		t.Fatal("conflicting license_key and purchase_code accepted")
	}
	// An installer form with both fields, one left empty or padded.
	for _, f := range []map[string]string{
		{"license_key": "K", "purchase_code": ""},
		{"license_key": "", "purchase_code": "K"},
		{"license_key": "K", "purchase_code": "  "},
		{"license_key": " K ", "purchase_code": "K\n"},
	} {
		r, err := activateRequest(f)
		if err != nil || r.Key != "K" {
			t.Errorf("%q: key %q, err %v", f, r.Key, err)
		}
	}
}

// FuzzDecodeBody: any body either decodes to fields within the limits or is
// refused with a public 4xx code; never a panic or an internal error.
func FuzzDecodeBody(f *testing.F) {
	seeds := []struct{ ct, body string }{
		{"application/json", `{"license_key":"KEY","domain":"acme.com"}`},
		{"application/json", `{"a":null}`},
		{"application/json", `{"a":{"b":1}}`},
		{"application/json", `"str"`},
		{"application/json", `{"a":"\ud800"}`},
		{"application/x-www-form-urlencoded", `license_key=KEY&domain=acme.com`},
		{"application/x-www-form-urlencoded", `a=%00&b=%ff`},
		{"", `;;;&&&==`},
		{"multipart/form-data; boundary=x", `--x--`},
		{"application/json; charset=latin1", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		fields, err := decodeBody(ct, body)
		if err != nil {
			var e *gateway.Error
			if !errors.As(err, &e) {
				t.Fatalf("non-public error %v", err)
			}
			if st := statusFor[e.Code]; st < 400 || st >= 500 {
				t.Fatalf("code %s maps to %d", e.Code, st)
			}
			return
		}
		for k, v := range fields {
			if len(v) > maxField {
				t.Fatalf("field %q longer than the limit", k)
			}
		}
		if _, err := activateRequest(fields); err != nil {
			var e *gateway.Error
			if !errors.As(err, &e) || statusFor[e.Code] != 422 {
				t.Fatalf("activateRequest: %v", err)
			}
		}
	})
}

// multipartBody builds a multipart/form-data body from pairs of
// Content-Disposition parameters and values.
func multipartBody(boundary string, pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n", boundary, pairs[i], pairs[i+1])
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.String()
}

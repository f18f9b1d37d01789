package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts every Standard Webhooks secret; the rest is base64.
const secretPrefix = "whsec_"

// Secret is one decoded signing key.
type Secret struct{ key []byte }

// ParseSecret decodes a "whsec_<base64>" secret. Keys of 24 to 64 bytes
// are what the convention's libraries generate; shorter ones are refused
// as too weak to sign with.
func ParseSecret(s string) (Secret, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), secretPrefix)
	if !ok {
		return Secret{}, errors.New("webhook secret: must start with whsec_ (Standard Webhooks format)")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return Secret{}, errors.New("webhook secret: the part after whsec_ is not base64")
	}
	if len(key) < 16 {
		return Secret{}, fmt.Errorf("webhook secret: %d bytes is too short (want at least 16; generate 32 random bytes)", len(key))
	}
	return Secret{key: key}, nil
}

// GoString keeps the key out of %#v.
func (Secret) GoString() string { return "webhooks.Secret{…}" }

// String keeps the key out of %v.
func (Secret) String() string { return "whsec_…" }

// Sign returns the webhook-signature header value for one message: one
// "v1,<base64>" per secret, space-separated, so during a rotation a
// receiver holding either secret verifies it.
func Sign(id string, ts time.Time, body []byte, secrets []Secret) string {
	content := signedContent(id, ts, body)
	parts := make([]string, 0, len(secrets))
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s.key)
		mac.Write(content)
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(parts, " ")
}

func signedContent(id string, ts time.Time, body []byte) []byte {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	b := make([]byte, 0, len(id)+len(stamp)+len(body)+2)
	b = append(b, id...)
	b = append(b, '.')
	b = append(b, stamp...)
	b = append(b, '.')
	return append(b, body...)
}

// Package secret turns the gateway's master secret into the keys it uses:
// a keyed hash for licence ids and token lookups, and AES-256-GCM for what
// must be stored but never read back by an attacker with the store (purchase
// codes, signing keys, replayable answers).
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// MinLength is the shortest master secret accepted, in bytes.
const MinLength = 32

// Master holds keys derived from the master secret. Its zero value is not
// usable; build one with New.
type Master struct {
	idKey   []byte
	sealKey cipher.AEAD
}

// New derives the working keys from a master secret.
func New(master []byte) (*Master, error) {
	if len(master) < MinLength {
		return nil, fmt.Errorf("secret must be at least %d bytes, got %d", MinLength, len(master))
	}
	idKey, err := hkdf.Key(sha256.New, master, nil, "licensegate id v1", 32)
	if err != nil {
		return nil, err
	}
	encKey, err := hkdf.Key(sha256.New, master, nil, "licensegate seal v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Master{idKey: idKey, sealKey: aead}, nil
}

// Generate returns a new random master secret, encoded for a file or an
// environment variable.
func Generate() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns a hex keyed hash (HMAC-SHA-256) of the parts, joined
// unambiguously. The same parts always give the same hash under the same
// secret, so it serves as a lookup id that reveals nothing.
func (m *Master) Hash(parts ...string) string {
	mac := hmac.New(sha256.New, m.idKey)
	for _, p := range parts {
		fmt.Fprintf(mac, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// Seal encrypts plaintext bound to aad (which must be given again to Open).
func (m *Master) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, m.sealKey.NonceSize(), m.sealKey.NonceSize()+len(plaintext)+m.sealKey.Overhead())
	_, _ = rand.Read(nonce)
	return m.sealKey.Seal(nonce, nonce, plaintext, aad)
}

// ErrOpen means a sealed value was tampered with or sealed under another
// secret.
var ErrOpen = errors.New("cannot decrypt: wrong secret or corrupted data")

// Open decrypts what Seal produced.
func (m *Master) Open(sealed, aad []byte) ([]byte, error) {
	n := m.sealKey.NonceSize()
	if len(sealed) < n+m.sealKey.Overhead() {
		return nil, ErrOpen
	}
	out, err := m.sealKey.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

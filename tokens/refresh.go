package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
)

// RefreshPrefix starts every refresh token.
const RefreshPrefix = "rt_"

// ErrMalformedRefresh means a string is not shaped like a refresh token.
var ErrMalformedRefresh = errors.New("malformed refresh token")

// NewRefresh returns a new refresh token in family (a new family when
// family is empty) and the family. The family is part of the token so a
// store can keep one family's records together (one Redis hash slot).
func NewRefresh(family string) (token, fam string) {
	if family == "" {
		family = randomID(12)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return RefreshPrefix + family + "." + base64.RawURLEncoding.EncodeToString(b), family
}

// RefreshFamily checks a refresh token's shape and returns its family.
func RefreshFamily(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, RefreshPrefix)
	if !ok || len(token) > 128 {
		return "", ErrMalformedRefresh
	}
	fam, sec, ok := strings.Cut(rest, ".")
	if !ok || len(fam) != 16 || len(sec) != 43 {
		return "", ErrMalformedRefresh
	}
	if _, err := base64.RawURLEncoding.DecodeString(sec); err != nil {
		return "", ErrMalformedRefresh
	}
	if _, err := base64.RawURLEncoding.DecodeString(fam); err != nil {
		return "", ErrMalformedRefresh
	}
	return fam, nil
}

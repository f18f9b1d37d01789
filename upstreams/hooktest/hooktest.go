// Package hooktest holds what the vendors' webhook tests share: reading
// one of the documented payloads a package keeps in testdata/hooks, and
// checking that a delivery is refused the way every verifier must refuse
// one (upstreams.HookVerifier).
package hooktest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// Fixture reads testdata/hooks/name of the package under test.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Refused fails t unless v refuses req at now with an error wrapping
// want, says nothing of the hook (no licence, no event) and quotes none
// of secrets in its error.
func Refused(t *testing.T, v upstreams.HookVerifier, req upstreams.HookRequest, now time.Time, want error, secrets ...string) {
	t.Helper()
	got, err := v.Verify(req, now)
	if !errors.Is(err, want) {
		t.Fatalf("Verify error = %v, want %v", err, want)
	}
	if got.Names() || got.Event != "" {
		t.Errorf("a refused hook still says %v", got)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q quotes a secret", err)
		}
	}
}

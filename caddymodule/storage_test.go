package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	s := &EmbeddedStorage{path: filepath.Join(dir, "licensegate.db")}
	// A temporary file left by a crash mid-write is no obstacle.
	if err := os.WriteFile(filepath.Join(dir, ".secret-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	values := make([]string, 8)
	created := make([]bool, 8)
	for i := range values {
		wg.Go(func() {
			v, c, _, err := s.LoadOrCreateSecret()
			if err != nil {
				t.Error(err)
			}
			values[i], created[i] = v, c
		})
	}
	wg.Wait()
	n := 0
	for i, v := range values {
		if v != values[0] || len(v) < 32 {
			t.Fatalf("concurrent first starts disagree: %q vs %q", v, values[0])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d callers report creating the secret, want 1", n)
	}
	path := filepath.Join(dir, "secret")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file %v, %v: want mode 0600", fi, err)
	}
	raw, _ := os.ReadFile(path)
	if strings.TrimSpace(string(raw)) != values[0] {
		t.Fatalf("file holds %q, callers got %q", raw, values[0])
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".secret-") && e.Name() != ".secret-123" {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
	// Later starts read it back.
	if v, c, _, err := s.LoadOrCreateSecret(); err != nil || c || v != values[0] {
		t.Fatalf("second start: %q %v %v", v, c, err)
	}
}

// Issue 20, L4: a Redis URL the parser refuses is named without its
// password in the provisioning error.
func TestRedisAddressErrorHidesThePassword(t *testing.T) {
	for _, addr := range []string{
		"redis://user:s3cr3t-pass@127.0.0.1:notaport/0",
		"redis://:s3cr3t-pass@127.0.0.1:6379/notadb",
		"rediss://user:s3cr3t-pass@[::1:6379/0",
	} {
		s := &RedisStorage{Address: addr}
		_, err := s.universalOptions()
		if err == nil {
			t.Fatalf("%s: accepted", addr)
		}
		if strings.Contains(err.Error(), "s3cr3t-pass") || !strings.Contains(err.Error(), "storage redis: address") {
			t.Errorf("error %q: want it to name the option without the password", err)
		}
	}
}

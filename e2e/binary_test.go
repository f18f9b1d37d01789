package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func TestListModules(t *testing.T) {
	out, err := exec.Command(binary, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, id := range []string{"licensegate", "http.handlers.license_exchange", "http.handlers.license_gate", "licensegate.storage.embedded", "licensegate.sources.static"} {
		if !have[id] {
			t.Errorf("list-modules lacks %s", id)
		}
	}
}

// TestXcaddyManifestMatchesGoMod keeps xcaddy.json, which xcaddy users
// build from, in step with go.mod.
func TestXcaddyManifestMatchesGoMod(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var modulePath, caddyVersion string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "module":
			modulePath = f[1]
		case len(f) >= 2 && f[0] == "github.com/caddyserver/caddy/v2":
			caddyVersion = f[1]
		case len(f) >= 3 && f[0] == "require" && f[1] == "github.com/caddyserver/caddy/v2":
			caddyVersion = f[2]
		}
	}
	if modulePath == "" || caddyVersion == "" {
		t.Fatalf("go.mod: module %q, caddy %q", modulePath, caddyVersion)
	}
	var manifest struct {
		CaddyVersion string `json:"caddy_version"`
		Plugins      []struct {
			ModulePath string `json:"module_path"`
		} `json:"plugins"`
	}
	raw, err = os.ReadFile(filepath.Join(repoRoot(), "xcaddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json caddy_version %q, go.mod requires %q", manifest.CaddyVersion, caddyVersion)
	}
	if len(manifest.Plugins) != 1 || manifest.Plugins[0].ModulePath != modulePath {
		t.Errorf("xcaddy.json plugins %+v, want module %s", manifest.Plugins, modulePath)
	}
}

// TestCaddyfileExampleValidates provisions Caddyfile.example as a new user
// would run it (embedded store, generated secret, demo keys).
func TestCaddyfileExampleValidates(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "validate", "--config", "Caddyfile.example")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("validate Caddyfile.example: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "caddy", "licensegate", "secret")); err != nil {
		t.Errorf("no generated secret beside the store: %v", err)
	}
}

// TestValidateRefusesConfigErrors: mistakes an author can make in the
// Caddyfile fail `validate` with a message naming the option.
func TestValidateRefusesConfigErrors(t *testing.T) {
	cases := map[string]struct{ config, want string }{
		"brace in redis key_prefix": {`{
	licensegate {
		storage redis {
			address 127.0.0.1:1
			key_prefix "lg{x}:"
		}
		secret 0123456789abcdef0123456789abcdef
	}
}
:0 {
	respond ok
}
`, "key_prefix"},
		"gumroad webhook token without seller_id": {`{
	licensegate {
		secret 0123456789abcdef0123456789abcdef
		source gumroad {
			webhook_path_token a-long-random-path-token-0123456789
		}
		product p {
			sources gumroad
			gumroad_product gum-1
		}
	}
}
:0 {
	handle /hooks/* {
		license_hooks
	}
}
`, "store webhooks need seller_id too"},
		"lemon squeezy webhook secret too short": {`{
	licensegate {
		secret 0123456789abcdef0123456789abcdef
		source lemonsqueezy {
			webhook_secret abc
		}
		product p {
			sources lemonsqueezy
			lemonsqueezy_product 4
		}
	}
}
:0 {
	respond ok
}
`, "at least 6 characters"},
		"keygen public key not hex": {`{
	licensegate {
		secret 0123456789abcdef0123456789abcdef
		source keygen {
			account acme
			webhook_public_key not-a-key
		}
		product p {
			sources keygen
			keygen_product 4c6b1e7a-2f0e-4b5f-9e4b-1f3b7a4c9d21
		}
	}
}
:0 {
	respond ok
}
`, "webhook_public_key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary, "validate", "--config", path)
			cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("validate accepted it:\n%s", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("error does not name %s:\n%s", c.want, out)
			}
		})
	}
}

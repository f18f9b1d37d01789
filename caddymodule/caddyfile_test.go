package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCaddyfileAdapt adapts each testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a line "----------", the expected JSON) and compares.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, _ := strings.Cut(string(raw), "\n----------\n")
			got := adapt(t, input)
			if *update {
				if err := os.WriteFile(file, []byte(input+"\n----------\n"+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Fatalf("adapted JSON differs (run with -update to accept):\n%s", got)
			}
		})
	}
}

func adapt(t *testing.T, input string) string {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"unknown option":        "{\n\tlicensegate {\n\t\tbogus 1\n\t}\n}\n",
		"release_idle no value": "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trelease_idle\n\t\t}\n\t}\n}\n",
		"recheck bad mode":      "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck every 6h mode suspend\n\t\t}\n\t}\n}\n",
		"recheck bad word":      "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck every 6h often\n\t\t}\n\t}\n}\n",
		"recheck no value":      "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck every\n\t\t}\n\t}\n}\n",
		"recheck bad confirm":   "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck mode auto confirm 0\n\t\t}\n\t}\n}\n",
		"recheck bad duration":  "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck every soon\n\t\t}\n\t}\n}\n",
		"recheck twice":         "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\trecheck mode off\n\t\t\trecheck mode off\n\t\t}\n\t}\n}\n",
		"bad expiry_grace":      "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\texpiry_grace -1h\n\t\t}\n\t}\n}\n",
		"redis bad option":      "{\n\tlicensegate {\n\t\tstorage redis {\n\t\t\tnope\n\t\t}\n\t}\n}\n",
		"bad on_store_error":    ":8080 {\n\tlicense_gate {\n\t\ton_store_error maybe\n\t}\n}\n",
		"bad duration":          "{\n\tlicensegate {\n\t\taccess_token_ttl soon\n\t}\n}\n",
		"bad activations":       "{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tactivations zero\n\t\t}\n\t}\n}\n",
		"gate quota bad":        ":8080 {\n\tlicense_gate {\n\t\tquota 10/w\n\t}\n}\n",
		"exchange unknown opt":  ":8080 {\n\tlicense_exchange {\n\t\tnope\n\t}\n}\n",
		"hooks with an option":  ":8080 {\n\tlicense_hooks {\n\t\tsecret x\n\t}\n}\n",
		"hooks with an arg":     ":8080 {\n\tlicense_hooks lemonsqueezy\n}\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
			if err == nil {
				t.Fatal("adapted without error")
			}
			if !strings.Contains(err.Error(), "Caddyfile:") {
				t.Errorf("error does not name the file and line: %v", err)
			}
		})
	}
}

// Option values are checked while adapting, so the error names the
// Caddyfile line rather than surfacing at provision.
func TestCaddyfileErrorMessages(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"unknown storage": {"{\n\tlicensegate {\n\t\tstorage s3\n\t}\n}\n",
			`storage: unknown kind "s3" (want embedded or redis), at Caddyfile:3`},
		"bad local_domains": {"{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tlocal_domains maybe\n\t\t}\n\t}\n}\n",
			`product p: local_domains: "maybe" is not free, slot or deny, at Caddyfile:4`},
		"unknown source": {"{\n\tlicensegate {\n\t\tsource nope\n\t}\n}\n",
			`source: unknown source "nope", at Caddyfile:3`},
		"unknown source option": {"{\n\tlicensegate {\n\t\tsource envato {\n\t\t\tnope 1\n\t\t}\n\t}\n}\n",
			`source envato: unrecognized option "nope", at Caddyfile:4`},
		"allow_test_mode takes no value": {"{\n\tlicensegate {\n\t\tsource lemonsqueezy {\n\t\t\tallow_test_mode yes\n\t\t}\n\t}\n}\n",
			`wrong argument count or unexpected line ending after 'yes', at Caddyfile:4`},
		"unknown lemonsqueezy option": {"{\n\tlicensegate {\n\t\tsource lemonsqueezy {\n\t\t\ttest_mode\n\t\t}\n\t}\n}\n",
			`source lemonsqueezy: unrecognized option "test_mode", at Caddyfile:4`},
		"keygen environment without a value": {"{\n\tlicensegate {\n\t\tsource keygen {\n\t\t\tenvironment\n\t\t}\n\t}\n}\n",
			`Caddyfile:4`},
		"reuse grace too long": {"{\n\tlicensegate {\n\t\trefresh_reuse_grace 2m\n\t}\n}\n",
			`refresh_reuse_grace: "2m" is not between 0 (off) and 1m0s, at Caddyfile:3`},
		"bad staging_subdomains": {"{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tstaging_subdomains FREE\n\t\t}\n\t}\n}\n",
			`product p: staging_subdomains: "FREE" is not free, slot or deny, at Caddyfile:4`},
		"cap on slot": {"{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tlocal_domains slot 5\n\t\t}\n\t}\n}\n",
			`product p: local_domains: only free takes a cap, a positive number (got "slot 5"), at Caddyfile:4`},
		"zero cap": {"{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tstaging_subdomains free 0\n\t\t}\n\t}\n}\n",
			`product p: staging_subdomains: only free takes a cap, a positive number (got "free 0"), at Caddyfile:4`},
		"bad leak_threshold": {"{\n\tlicensegate {\n\t\tproduct p {\n\t\t\tleak_threshold 5\n\t\t}\n\t}\n}\n",
			`product p: leak_threshold: "5" is not <calls>/<period>, e.g. 60/m, at Caddyfile:4`},
		"bad forward": {":8080 {\n\tlicense_gate {\n\t\tforward installation secret\n\t}\n}\n",
			`license_gate: forward: "secret" is not one of installation, product, domain, type, support_active, class, entitlements, at Caddyfile:3`},
		"quota bad period": {":8080 {\n\tlicense_gate {\n\t\tquota 10/10m\n\t}\n}\n",
			`license_gate: quota: "10/10m": the period is one of s, m, h, d, at Caddyfile:3`},
		"require nothing": {":8080 {\n\tlicense_gate {\n\t\trequire\n\t}\n}\n",
			`license_gate: require: want support_active, type <type...>, class <class...> or entitlement <name...>, at Caddyfile:3`},
		"require bad class": {":8080 {\n\tlicense_gate {\n\t\trequire class prod\n\t}\n}\n",
			`license_gate: require: class "prod" is not one of production, staging, local, at Caddyfile:3`},
		"require type without types": {":8080 {\n\tlicense_gate {\n\t\trequire type\n\t}\n}\n",
			`license_gate: require: want support_active, type <type...>, class <class...> or entitlement <name...>, at Caddyfile:3`},
		"bad failed_source_limit": {":8080 {\n\tlicense_exchange {\n\t\tfailed_source_limit lots\n\t}\n}\n",
			`license_exchange: failed_source_limit: "lots" is not <calls>/<period>, e.g. 60/m, at Caddyfile:3`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(c.in), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// access_token_ttl accepts 1s and more (below 5m with a warning); less is
// refused, naming the option.
func TestAccessTokenTTLBounds(t *testing.T) {
	conf := func(ttl string) string {
		return "{\n\tadmin off\n\tlicensegate {\n\t\tstorage embedded " + filepath.Join(t.TempDir(), "lg.db") +
			"\n\t\taccess_token_ttl " + ttl + "\n\t}\n}\n"
	}
	for _, ok := range []string{"1s", "30s", "5m"} {
		if err := validate(t, conf(ok)); err != nil {
			t.Errorf("access_token_ttl %s: %v", ok, err)
		}
	}
	if err := validate(t, conf("500ms")); err == nil || !strings.Contains(err.Error(), "access_token_ttl: 500ms is shorter than 1s") {
		t.Errorf("access_token_ttl 500ms: %v", err)
	}
}

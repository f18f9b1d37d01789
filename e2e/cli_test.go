package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cli runs a licensegate subcommand against the gateway's admin endpoint.
func (g *gateway) cli(args ...string) (string, error) {
	g.t.Helper()
	cmd := exec.Command(binary, append(args, "--address", fmt.Sprintf("127.0.0.1:%d", g.admin))...)
	cmd.Env = g.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCLIAgainstARunningGateway(t *testing.T) {
	g, _ := startDefault(t)
	a := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, a, http.StatusCreated, "")
	lic, ins, token := a.str("license", "id"), a.str("installation_id"), a.str("access_token")

	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"license", "show", "KEY-AAAA-0001"}, []string{lic, "active", "Alice", "acme.com", ins}},
		{[]string{"license", "suspend", lic, "--reason", "chargeback"}, []string{lic, "suspended", "chargeback"}},
		{[]string{"license", "reinstate", lic, "--reason", "resolved"}, []string{lic, "active"}},
		{[]string{"license", "lock", lic, "--reason", "leaked"}, []string{lic, "locked"}},
		{[]string{"license", "unlock", lic}, []string{lic}},
		{[]string{"installation", "deactivate", ins, "--reason", "server gone"}, []string{ins, "deactivated"}},
		{[]string{"keys", "rotate"}, []string{"kid"}},
		{[]string{"audit"}, []string{"license.suspended", "chargeback", "installation.deactivated", "keys.rotated"}},
	}
	for _, s := range steps {
		out, err := g.cli(s.args...)
		if err != nil {
			t.Fatalf("licensegate %s: %v\n%s", strings.Join(s.args, " "), err, out)
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("licensegate %s: output lacks %q:\n%s", strings.Join(s.args, " "), w, out)
			}
		}
		if strings.Contains(out, "KEY-AAAA-0001") {
			t.Errorf("licensegate %s printed the licence key", strings.Join(s.args, " "))
		}
		if os.Getenv("LICENSEGATE_SHOW_CLI") != "" {
			fmt.Printf("$ licensegate %s\n%s\n", strings.Join(s.args, " "), out)
		}
	}
	expectStatus(t, g.call(token), http.StatusForbidden, "installation_deactivated")

	out, err := g.cli("license", "show", "lic_nope")
	if err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("unknown id: %v\n%s", err, out)
	}
	out, err = g.cli("license", "show", "lic_nope", "--json")
	if err == nil {
		t.Fatalf("unknown id with --json succeeded:\n%s", out)
	}
	out, err = g.cli("license", "show", lic, "--json")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("--json: %v\n%s", err, out)
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// testKey is a licence key; it must show up only in lookup bodies.
const testKey = "8f14e45f-ceea-467f-a0f9-94d2b8c1e0a7"

const testLicenseAnswer = `{"license":{"id":"lic_7Hq2","status":"active","locked":false,
"product":"shopkit","source":"envato","type":"regular","licensed_to":"Ada Buyer",
"expires_at":null,"support_until":"2027-03-01T00:00:00Z","next_check_at":"2026-06-01T00:00:00Z",
"activations_limit":2,"activations_used":1},
"installations":[{"id":"inst_9","domain":"shop.example","install_class":"production","status":"active",
"created_at":"2026-01-02T03:04:05Z","last_seen_at":"2026-05-01T00:00:00Z"}]}`

// exchange is one request the fake admin API expects, in order, and its
// canned answer.
type exchange struct {
	method string
	target string // path and query; the query is compared as a set
	body   string // expected JSON body; "" for none
	status int    // 0: 200
	answer string
}

// fakeAdmin plays the admin API: it checks each request against the next
// exchange and records every request URI.
type fakeAdmin struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	want []exchange
	uris []string
}

func newFakeAdmin(t *testing.T, want ...exchange) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{t: t, want: want}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.want) > 0 {
			t.Errorf("admin API requests never made: %+v", f.want)
		}
	})
	f.addr = srv.Listener.Addr().String()
	return f
}

func (f *fakeAdmin) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.uris = append(f.uris, r.RequestURI)
	if len(f.want) == 0 {
		f.mu.Unlock()
		f.t.Errorf("unexpected request %s %s", r.Method, r.RequestURI)
		http.Error(w, `{"error":"unexpected"}`, http.StatusTeapot)
		return
	}
	ex := f.want[0]
	f.want = f.want[1:]
	f.mu.Unlock()

	want, _ := url.Parse(ex.target)
	if r.Method != ex.method || r.URL.Path != want.Path || !reflect.DeepEqual(r.URL.Query(), want.Query()) {
		f.t.Errorf("request %s %s, want %s %s", r.Method, r.RequestURI, ex.method, ex.target)
	}
	if !sameJSON(string(body), ex.body) {
		f.t.Errorf("%s %s body %q, want %q", r.Method, r.URL.Path, body, ex.body)
	}
	status := ex.status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, ex.answer)
}

// requested returns every request URI seen, joined.
func (f *fakeAdmin) requested() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.uris, "\n")
}

func sameJSON(got, want string) bool {
	if got == "" || want == "" {
		return got == want
	}
	var g, w any
	return json.Unmarshal([]byte(got), &g) == nil && json.Unmarshal([]byte(want), &w) == nil && reflect.DeepEqual(g, w)
}

// runCommand runs licensegate's registered commands as the binary would,
// with args, and returns what they printed.
func runCommand(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "licensegate", SilenceUsage: true}
	for _, name := range []string{"license", "installation", "keys", "audit", "webhooks"} {
		c, ok := caddycmd.Commands()[name]
		if !ok {
			t.Fatalf("command %q is not registered", name)
		}
		cmd := &cobra.Command{Use: c.Name + " " + c.Usage, Short: c.Short, Long: c.Long}
		c.CobraFunc(cmd)
		root.AddCommand(cmd)
	}
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func assertContains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func assertNoKey(t *testing.T, f *fakeAdmin, printed ...string) {
	t.Helper()
	if strings.Contains(f.requested(), testKey) {
		t.Errorf("licence key in a request URI:\n%s", f.requested())
	}
	for _, p := range printed {
		if strings.Contains(p, testKey) {
			t.Errorf("licence key printed:\n%s", p)
		}
	}
}

func TestCommandLicenseShowByID(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "GET", target: "/licensegate/licenses/lic_7Hq2", answer: testLicenseAnswer})
	out, errOut, err := runCommand(t, "", "license", "show", "lic_7Hq2", "--address", f.addr)
	if err != nil {
		t.Fatalf("license show: %v (stderr %q)", err, errOut)
	}
	assertContains(t, "license show", out,
		"id                 lic_7Hq2", "status             active", "licensed_to        Ada Buyer",
		"expires_at         -", "activations_limit  2", "activations_used   1",
		"ID      DOMAIN        CLASS       STATUS  CREATED               LAST SEEN",
		"inst_9  shop.example  production  active  2026-01-02T03:04:05Z  2026-05-01T00:00:00Z")
}

func TestCommandLicenseShowByKey(t *testing.T) {
	for _, tc := range []struct {
		name, stdin, arg string
	}{
		{"argument", "", testKey},
		{"stdin", testKey + "\n", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAdmin(t, exchange{method: "POST", target: "/licensegate/licenses/lookup",
				body: `{"license_key":"` + testKey + `"}`, answer: testLicenseAnswer})
			out, errOut, err := runCommand(t, tc.stdin, "license", "show", tc.arg, "--address", f.addr)
			if err != nil {
				t.Fatalf("license show: %v (stderr %q)", err, errOut)
			}
			assertContains(t, "license show", out, "lic_7Hq2", "shop.example")
			assertNoKey(t, f, out, errOut)
		})
	}
}

func TestCommandLicenseShowJSON(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "GET", target: "/licensegate/licenses/lic_7Hq2", answer: testLicenseAnswer})
	out, _, err := runCommand(t, "", "license", "show", "lic_7Hq2", "--json", "--address", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	var ans licenseAnswer
	if err := json.Unmarshal([]byte(out), &ans); err != nil {
		t.Fatalf("--json printed invalid JSON: %v\n%s", err, out)
	}
	if ans.License.text("id") != "lic_7Hq2" || len(ans.Installations) != 1 {
		t.Errorf("--json printed %s", out)
	}
}

func TestCommandLicenseActions(t *testing.T) {
	for _, a := range licenseActions {
		t.Run(a.verb, func(t *testing.T) {
			f := newFakeAdmin(t,
				exchange{method: "POST", target: "/licensegate/licenses/lookup", body: `{"license_key":"` + testKey + `"}`, answer: testLicenseAnswer},
				exchange{method: "POST", target: "/licensegate/licenses/lic_7Hq2/" + a.verb, body: `{"reason":"chargeback 42"}`, answer: testLicenseAnswer},
			)
			out, errOut, err := runCommand(t, "", "license", a.verb, testKey, "--reason", "chargeback 42", "--address", f.addr)
			if err != nil {
				t.Fatalf("license %s: %v (stderr %q)", a.verb, err, errOut)
			}
			assertContains(t, "license "+a.verb, out, "lic_7Hq2 "+a.done+" (reason: chargeback 42)\n", "status             active", "inst_9")
			assertNoKey(t, f, out, errOut)
		})
	}
}

func TestCommandLicenseActionByIDWithoutReason(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "POST", target: "/licensegate/licenses/lic_7Hq2/lock", body: `{"reason":""}`, answer: testLicenseAnswer})
	out, _, err := runCommand(t, "", "license", "lock", "lic_7Hq2", "--address", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "lic_7Hq2 locked\n") {
		t.Errorf("license lock printed:\n%s", out)
	}
}

func TestCommandAdminError(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "GET", target: "/licensegate/licenses/lic_nope",
		status: http.StatusNotFound, answer: `{"error":"license not found"}` + "\n"})
	out, errOut, err := runCommand(t, "", "license", "show", "lic_nope", "--address", f.addr)
	var adminErr *adminError
	if !errors.As(err, &adminErr) || adminErr.Status != http.StatusNotFound || err.Error() != "license not found" {
		t.Fatalf("error %#v, want the admin API's 404 message", err)
	}
	if errOut != "error: license not found\n" || out != "" {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
}

func TestCommandAdminErrorRedactsKey(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "POST", target: "/licensegate/licenses/lookup", body: `{"license_key":"` + testKey + `"}`,
		status: http.StatusNotFound, answer: `{"error":"no licence for ` + testKey + `"}`})
	_, errOut, err := runCommand(t, "", "license", "suspend", testKey, "--address", f.addr)
	if err == nil || strings.Contains(err.Error(), testKey) {
		t.Fatalf("error %v, want one without the key", err)
	}
	if errOut != "error: no licence for [redacted]\n" {
		t.Errorf("stderr %q", errOut)
	}
	assertNoKey(t, f, errOut)
}

func TestCommandAdminErrorNotJSON(t *testing.T) {
	f := newFakeAdmin(t, exchange{method: "POST", target: "/licensegate/keys/rotate", status: http.StatusBadGateway, answer: "bad gateway"})
	_, errOut, err := runCommand(t, "", "keys", "rotate", "--address", f.addr)
	if err == nil || !strings.Contains(err.Error(), "HTTP 502") || !strings.HasPrefix(errOut, "error: ") {
		t.Errorf("error %v, stderr %q", err, errOut)
	}
}

func TestCommandInstallationDeactivate(t *testing.T) {
	answer := `{"installation":{"id":"inst_9","domain":"shop.example","install_class":"production","status":"deactivated",
"created_at":"2026-01-02T03:04:05Z","last_seen_at":null},"license":{"id":"lic_7Hq2","status":"active","product":"shopkit"}}`
	f := newFakeAdmin(t,
		exchange{method: "DELETE", target: "/licensegate/installations/inst_9", body: `{"reason":"moved to new host"}`, answer: answer},
		exchange{method: "DELETE", target: "/licensegate/installations/inst_9", body: `{"reason":""}`, answer: answer},
	)
	out, errOut, err := runCommand(t, "", "installation", "deactivate", "inst_9", "--reason", "moved to new host", "--address", f.addr)
	if err != nil {
		t.Fatalf("installation deactivate: %v (stderr %q)", err, errOut)
	}
	assertContains(t, "installation deactivate", out, "inst_9 deactivated (reason: moved to new host)\n",
		"inst_9  shop.example  production  deactivated  2026-01-02T03:04:05Z  -", "product            shopkit")

	out, _, err = runCommand(t, "", "installation", "deactivate", "inst_9", "--json", "--address", f.addr)
	if err != nil || !json.Valid([]byte(out)) {
		t.Errorf("--json: %v\n%s", err, out)
	}
}

func TestCommandKeysRotate(t *testing.T) {
	answer := `{"kid":"k3","keys":["k1","k2","k3"]}`
	f := newFakeAdmin(t,
		exchange{method: "POST", target: "/licensegate/keys/rotate", answer: answer},
		exchange{method: "POST", target: "/licensegate/keys/rotate", answer: answer},
	)
	out, _, err := runCommand(t, "", "keys", "rotate", "--address", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	assertContains(t, "keys rotate", out, "current kid: k3\n", "KID  CURRENT\n", "k1   -\n", "k3   yes\n")

	out, _, err = runCommand(t, "", "keys", "rotate", "--json", "--address", f.addr)
	var ans struct {
		Kid  string   `json:"kid"`
		Keys []string `json:"keys"`
	}
	if err != nil || json.Unmarshal([]byte(out), &ans) != nil || ans.Kid != "k3" || len(ans.Keys) != 3 {
		t.Errorf("--json: %v\n%s", err, out)
	}
}

// webhooks retry prints what it did: the admin API's answer is read
// although nothing of it is printed (it once failed to decode into nothing).
func TestCommandWebhooksRetry(t *testing.T) {
	f := newFakeAdmin(t,
		exchange{method: "POST", target: "/licensegate/webhooks/deliveries/dlv_7%2Fx/retry", answer: `{"id":"dlv_7/x","status":"pending"}`},
	)
	out, _, err := runCommand(t, "", "webhooks", "retry", "dlv_7/x", "--address", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	assertContains(t, "webhooks retry", out, "delivery dlv_7/x is pending again\n")
}

func auditEvent(id, action string) string {
	return `{"id":"` + id + `","at":"2026-05-01T10:00:0` + id + `Z","actor":"admin","action":"` + action +
		`","license_id":"lic_7Hq2","installation_id":"inst_9","reason":"chargeback","detail":"shop.example"}`
}

func TestCommandAuditFollowsCursor(t *testing.T) {
	since := "2026-05-01T00:00:00Z"
	f := newFakeAdmin(t,
		exchange{method: "GET", target: "/licensegate/audit?since=" + since,
			answer: `{"events":[` + auditEvent("1", "license.suspended") + `,` + auditEvent("2", "license.reinstated") + `],"next_cursor":"2"}`},
		exchange{method: "GET", target: "/licensegate/audit?since=" + since + "&cursor=2",
			answer: `{"events":[` + auditEvent("3", "installation.deactivated") + `],"next_cursor":""}`},
	)
	out, errOut, err := runCommand(t, "", "audit", "--since", since, "--address", f.addr)
	if err != nil {
		t.Fatalf("audit: %v (stderr %q)", err, errOut)
	}
	assertContains(t, "audit", out,
		"AT                    ACTOR  ACTION                    LICENSE   INSTALLATION  REASON\n",
		"2026-05-01T10:00:01Z  admin  license.suspended         lic_7Hq2  inst_9        chargeback\n",
		"installation.deactivated")
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("audit printed %d lines, want header and 3 events:\n%s", n, out)
	}
}

func TestCommandAuditLimitJSON(t *testing.T) {
	f := newFakeAdmin(t,
		exchange{method: "GET", target: "/licensegate/audit?limit=3",
			answer: `{"events":[` + auditEvent("1", "a") + `,` + auditEvent("2", "b") + `],"next_cursor":"2"}`},
		exchange{method: "GET", target: "/licensegate/audit?cursor=2&limit=1",
			answer: `{"events":[` + auditEvent("3", "c") + `],"next_cursor":"3"}`},
	)
	out, _, err := runCommand(t, "", "audit", "--limit", "3", "--json", "--address", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	var page auditPage
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("--json printed invalid JSON: %v\n%s", err, out)
	}
	if len(page.Events) != 3 || page.NextCursor != "3" {
		t.Errorf("--json printed %d events, next_cursor %q:\n%s", len(page.Events), page.NextCursor, out)
	}
}

func TestCommandAuditEmptyAndRepeatedCursor(t *testing.T) {
	f := newFakeAdmin(t,
		exchange{method: "GET", target: "/licensegate/audit", answer: `{"events":[],"next_cursor":""}`},
		exchange{method: "GET", target: "/licensegate/audit", answer: `{"events":[],"next_cursor":"x"}`},
		exchange{method: "GET", target: "/licensegate/audit?cursor=x", answer: `{"events":[],"next_cursor":"x"}`},
	)
	out, _, err := runCommand(t, "", "audit", "--address", f.addr)
	if err != nil || out != "no audit events\n" {
		t.Errorf("empty audit: %v %q", err, out)
	}
	if _, _, err := runCommand(t, "", "audit", "--address", f.addr); err == nil {
		t.Error("a repeated cursor did not stop the audit")
	}
}

func TestCommandParseSince(t *testing.T) {
	now := time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"24h", "2026-05-01T12:00:00Z"},
		{"7d", "2026-04-25T12:00:00Z"},
		{"90m", "2026-05-02T10:30:00Z"},
		{"2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z"},
		{"2026-05-01T02:00:00+02:00", "2026-05-01T00:00:00Z"},
		{"yesterday", "error"},
		{"-1h", "error"},
	} {
		got, err := parseSince(tc.in, now)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("parseSince(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommandBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"license", "show"},
		{"license", "bogus", "lic_1"},
		{"keys", "rotate", "extra"},
		{"license", "show", ""},
		{"license", "show", "-"}, // empty stdin
		{"installation", "deactivate", ""},
		{"audit", "--limit", "-1"},
		{"audit", "--since", "soon"},
	} {
		if _, _, err := runCommand(t, "", append(args, "--address", "127.0.0.1:1")...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestCommandPrintableCells(t *testing.T) {
	o := object{"domain": json.RawMessage(`"evil\u001b[2J\tx.example"`), "n": json.RawMessage(`3`), "o": json.RawMessage(`{"a": 1}`)}
	for key, want := range map[string]string{"domain": "evil?[2J?x.example", "n": "3", "o": `{"a":1}`, "missing": "-"} {
		if got := o.cell(key); got != want {
			t.Errorf("cell(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestCommandLicenseRecheck(t *testing.T) {
	answer := `{"outcome":{"license_id":"lic_7Hq2","source":"envato","outcome":"invalid","reason":"refunded","event":"license.flagged","status":"flagged","next_check_at":null,"definitive":5},` +
		strings.TrimPrefix(testLicenseAnswer, "{")
	f := newFakeAdmin(t,
		exchange{method: "POST", target: "/licensegate/licenses/lookup", body: `{"license_key":"` + testKey + `"}`, answer: testLicenseAnswer},
		exchange{method: "POST", target: "/licensegate/licenses/lic_7Hq2/recheck", body: `{}`, answer: answer},
	)
	out, errOut, err := runCommand(t, "", "license", "recheck", testKey, "--address", f.addr)
	if err != nil {
		t.Fatalf("license recheck: %v (stderr %q)", err, errOut)
	}
	assertContains(t, "license recheck", out, "lic_7Hq2 rechecked: invalid (refunded), license.flagged\n", "inst_9")
	assertNoKey(t, f, out, errOut)
}

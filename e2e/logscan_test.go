package e2e

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The log scan (issue 13, acceptance 5): every gateway of the suite runs
// with Caddy's debug logging on (withDebug), every purchase code, access
// and refresh token the suite sends or receives is noted (noteSecrets),
// and when a gateway stops its whole log, Caddy's lines and ours, is
// scanned for each of them and the master secret, in plain, URL-encoded
// and base64 forms (scanLogs).

var secrets = struct {
	sync.Mutex
	set map[string]bool
}{set: map[string]bool{testSecret: true}}

// keyPattern matches the suite's purchase codes in a Caddyfile or key file.
var keyPattern = regexp.MustCompile(`KEY-[A-Z]{4}-\d{4}`)

func init() {
	for _, k := range keyPattern.FindAllString(demoKeys, -1) {
		secrets.set[k] = true
	}
	for _, k := range []string{envatoKey, apptrovoKey, lemonKey, ddpKey, cpKey, gumroadKey, keygenKey} {
		secrets.set[k] = true
	}
	// The webhook signing secret, whole and as the bare key the signer
	// decodes (a log of the key alone is as bad).
	secrets.set[e2eWebhookSecret] = true
	secrets.set[strings.TrimPrefix(e2eWebhookSecret, "whsec_")] = true
}

// noteSecret adds a value that must never be logged (too short a value
// would match by chance, and is no real secret).
func noteSecret(v string) {
	if len(v) < 12 {
		return
	}
	secrets.Lock()
	secrets.set[v] = true
	secrets.Unlock()
}

// noteSecrets notes the codes and tokens in a request body or a decoded
// answer.
func noteSecrets(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && isSecretField(k) {
				noteSecret(s)
			}
			noteSecrets(val)
		}
	case []any:
		for _, val := range x {
			noteSecrets(val)
		}
	case map[string]string:
		for k, s := range x {
			if isSecretField(k) {
				noteSecret(s)
			}
		}
	case string:
		if form, err := url.ParseQuery(x); err == nil {
			for k, vals := range form {
				if isSecretField(k) {
					for _, s := range vals {
						noteSecret(s)
					}
				}
			}
		}
	}
}

func isSecretField(k string) bool {
	return k == "license_key" || k == "access_token" || k == "refresh_token"
}

// withDebug turns Caddy's debug logging on in a Caddyfile: every logger,
// Caddy's and licensegate's, at every level.
func withDebug(caddyfile string) string {
	if strings.HasPrefix(caddyfile, "{\n") {
		return "{\n\tdebug\n" + caddyfile[2:]
	}
	return "{\n\tdebug\n}\n" + caddyfile
}

// forms are the encodings a secret is looked for in.
func forms(s string) []string {
	b := []byte(s)
	return []string{s, url.QueryEscape(s), url.PathEscape(s),
		base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)}
}

// scanLogs fails t when logs hold a noted secret in any form.
func scanLogs(t *testing.T, logs string) {
	t.Helper()
	for _, leak := range leaks(logs) {
		t.Errorf("a secret is in the logs: %s", leak)
	}
}

// leaks returns the log excerpts that hold a noted secret in any form
// (purchase codes in any case: sources canonicalise them).
func leaks(logs string) []string {
	secrets.Lock()
	list := make([]string, 0, len(secrets.set))
	for s := range secrets.set {
		list = append(list, s)
	}
	secrets.Unlock()
	lower := strings.ToLower(logs)
	var found []string
	for _, s := range list {
		code := keyPattern.MatchString(s) || uuidPattern.MatchString(s)
		for _, f := range forms(s) {
			i := strings.Index(logs, f)
			if i < 0 && code {
				i = strings.Index(lower, strings.ToLower(f))
			}
			if i >= 0 {
				found = append(found, fmt.Sprintf("%.8s… at …%s…", f, logs[max(0, i-300):min(len(logs), i+len(f)+100)]))
				break
			}
		}
	}
	return found
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// TestLogScanFindsALeak: the scan sees a secret in its encoded forms and
// a code in another case.
func TestLogScanFindsALeak(t *testing.T) {
	for _, logs := range []string{
		"msg " + base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"msg " + url.QueryEscape(testSecret),
		`{"msg":"x","code":"` + strings.ToUpper(envatoKey) + `"}`,
		"GET /v3/market/author/sale?code=" + envatoKey,
	} {
		if len(leaks(logs)) != 1 {
			t.Errorf("no leak seen in %q", logs)
		}
	}
	if l := leaks(`{"level":"info","msg":"activated","license":"lic_0123"}`); len(l) != 0 {
		t.Errorf("leaks in a clean line: %v", l)
	}
}

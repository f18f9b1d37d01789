package caddymodule

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Webhook secrets are resolved at provision (never kept resolved in the
// config), and mistakes are named by endpoint and option without the
// secret's value.
func TestProvisionWebhooks(t *testing.T) {
	const good = "whsec_c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cy0zMmI="
	t.Setenv("LG_WEBHOOK_TEST_SECRET", good)
	for _, tc := range []struct {
		name string
		wh   Webhook
		err  string
	}{
		{"env secret", Webhook{URL: "https://a.example/h", Secrets: []string{"{env.LG_WEBHOOK_TEST_SECRET}"}}, ""},
		{"rotation", Webhook{URL: "https://a.example/h", Secrets: []string{good, "{env.LG_WEBHOOK_TEST_SECRET}"}, Events: []string{"license.suspended"}}, ""},
		{"not whsec", Webhook{URL: "https://a.example/h", Secrets: []string{"hunter2-hunter2-hunter2"}}, "webhook https://a.example/h: secret: "},
		{"missing env", Webhook{URL: "https://a.example/h", Secrets: []string{"{env.LG_WEBHOOK_NOPE}"}}, "webhook https://a.example/h: secret: "},
		{"no secret", Webhook{URL: "https://a.example/h"}, "secret: give one"},
		{"bad url", Webhook{URL: "ftp://a.example/h", Secrets: []string{good}}, "url: "},
		{"unknown event", Webhook{URL: "https://a.example/h", Secrets: []string{good}, Events: []string{"license.exploded"}}, `unknown event type "license.exploded"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			storage, _ := json.Marshal(map[string]any{"module": "embedded", "path": filepath.Join(t.TempDir(), "lg.db")})
			wh := tc.wh
			a := &App{StorageRaw: storage, Secret: "webhook-test-secret-0123456789abcdef", Webhooks: []*Webhook{&wh}}
			err := a.Provision(cctx)
			defer a.Cleanup()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if wh.Secrets[len(wh.Secrets)-1] != "{env.LG_WEBHOOK_TEST_SECRET}" {
					t.Errorf("the config now holds %q", wh.Secrets)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/licensegate/licensegate/internal/browsertest"
	"github.com/licensegate/licensegate/internal/redistest"
)

// The author console in a real browser against the binary (SPEC section
// 13; issue 23), behind Caddy's own basic_auth: the author opens the
// review queue, sees a flagged licence with the recheck answer that
// flagged it, dismisses the flag with a reason, and the audit names them;
// a read-only user sees no lever, and a form they forge is refused.

const (
	consolePassword  = "console-e2e-password-0123"
	consoleKey       = "KEY-CONS-0001"
	consoleOtherKey  = "KEY-CONS-0002"
	consoleKeysClean = `key,product,type,licensed_to,expires_at,support_until,activations,status
KEY-CONS-0001,app,regular,alicebuilds,,2099-01-01T00:00:00Z,,active
KEY-CONS-0002,app,regular,bob,,2099-01-01T00:00:00Z,,active
`
)

func init() {
	noteSecret(consolePassword)
	noteSecret(consoleKey)
	noteSecret(consoleOtherKey)
}

// consoleTemplate serves app from the key file, with the console behind
// basic_auth at /console; reader is read-only.
const consoleTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		{{STORAGE}}
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		source static {
			file {{DIR}}/keys.csv
		}
		product app {
			sources static
			activations 2
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange
	}
	handle /console* {
		basic_auth {
			alice {{HASH}}
			reader {{HASH}}
		}
		license_console {
			read_only_users reader
		}
	}
	handle /open-console* {
		license_console {
			base_path /open-console
		}
	}
}
`

func TestConsoleInABrowser(t *testing.T) {
	for _, storage := range []string{"embedded", "redis"} {
		t.Run(storage, func(t *testing.T) { consoleInABrowser(t, storage) })
	}
}

// basicAuth is the Authorization header of user.
func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+consolePassword))
}

// consoleTab is a browser tab signed in to the console as user (the
// browser sends their basic_auth credentials with every request).
func consoleTab(t *testing.T, user string) context.Context {
	ctx := browsertest.New(t, 60*time.Second)
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	must(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basicAuth(user)}})
	must(t, err)
	return ctx
}

func consoleInABrowser(t *testing.T, storage string) {
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	must(t, err)
	g := newGateway(t, "127.0.0.1:1")
	g.template = consoleTemplate
	g.vars["HASH"] = string(hash)
	g.vars["STORAGE"] = "storage embedded " + filepath.Join(g.dir, "licensegate.db")
	redisAddr := ""
	if storage == "redis" {
		redisAddr = redistest.NewServer(t).Addr()
		g.vars["STORAGE"] = "storage redis redis://" + redisAddr + "/0"
	}
	g.writeKeys(consoleKeysClean)
	g.start()

	act := g.activate(consoleKey, "shop.alicebuilds.com")
	expectStatus(t, act, http.StatusCreated, "")
	noteSecret(act.str("access_token"))
	noteSecret(act.str("refresh_token"))
	bob := g.activate(consoleOtherKey, "bobsite.com")
	expectStatus(t, bob, http.StatusCreated, "")
	licID, bobID := act.str("license", "id"), bob.str("license", "id")

	// The source now says the key was revoked; the recheck (manual mode,
	// the default) flags the licence for the author.
	g.writeKeys(strings.Replace(consoleKeysClean, "alicebuilds,,2099-01-01T00:00:00Z,,active", "alicebuilds,,2099-01-01T00:00:00Z,,revoked", 1))
	expectStatus(t, g.adminCall(http.MethodPost, "licenses/"+licID+"/recheck", nil), http.StatusOK, "")
	if st := g.adminCall(http.MethodGet, "licenses/"+licID, nil); !strings.Contains(string(st.body), `"status":"flagged"`) {
		t.Fatalf("the recheck did not flag the licence: %s", st.body)
	}

	// Without credentials, or with a console that has no authentication
	// before it, every page is 403 and the log says what to do.
	for _, u := range []string{"/console/", "/console/queue", "/open-console/", "/open-console/licenses/" + licID} {
		if r := g.get(u, ""); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
			t.Errorf("GET %s without credentials: %d", u, r.status)
		}
	}
	if r := g.get("/open-console/", ""); r.status != http.StatusForbidden {
		t.Errorf("the console without basic_auth before it answered %d, want 403", r.status)
	}
	if !strings.Contains(g.logs.String(), "put basic_auth") {
		t.Error("no log line tells the author to put basic_auth before license_console")
	}

	shots := t.TempDir()
	ctx := consoleTab(t, "alice")
	must(t, chromedp.Do(ctx, chromedp.Navigate(g.url("/console/")), chromedp.WaitVisible(chromedp.CSS("figure.chart"))))
	browsertest.Screenshot(t, ctx, shots, "console-overview")

	// The queue: the flagged licence, with the answer that flagged it.
	must(t, chromedp.Do(ctx, chromedp.Navigate(g.url("/console/queue?kind=flagged")), chromedp.WaitVisible(chromedp.CSS("table"))))
	queue, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	must(t, err)
	for _, want := range []string{licID, "alicebuilds", "invalid (revoked)", "static", "Dismiss flag"} {
		if !strings.Contains(queue, want) {
			t.Errorf("the queue lacks %q:\n%s", want, queue)
		}
	}
	browsertest.Screenshot(t, ctx, shots, "console-queue")

	// Dismiss the flag, with a reason.
	must(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`input[name="reason"]`), "buyer showed the receipt"),
		chromedp.Click(chromedp.CSS(`button[formaction$="/dismiss"]`)), chromedp.WaitVisible(chromedp.CSS(".flash"))))
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	must(t, err)
	if !strings.Contains(flash, "Flag dismissed") {
		t.Errorf("after dismissing, the flash says %q", flash)
	}
	browsertest.Screenshot(t, ctx, shots, "console-licence")
	if st := g.adminCall(http.MethodGet, "licenses/"+licID, nil); !strings.Contains(string(st.body), `"status":"active"`) {
		t.Errorf("the dismissed licence is not active: %s", st.body)
	}
	audit := g.adminCall(http.MethodGet, "audit?limit=100", nil)
	if !strings.Contains(string(audit.body), `"actor":"admin:alice","action":"license.reinstated","license_id":"`+licID+`","reason":"buyer showed the receipt"`) {
		t.Errorf("the dismissal is not audited as alice's, with her reason:\n%s", audit.body)
	}
	timeline, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	must(t, err)
	if !strings.Contains(timeline, "admin:alice") || !strings.Contains(timeline, "license.flagged") {
		t.Errorf("the licence's timeline lacks the flag or alice's dismissal:\n%s", timeline)
	}

	// Search by the key (never shown back), by domain and by username.
	for _, s := range []struct{ by, q string }{{"key", consoleKey}, {"domain", "shop.alicebuilds.com"}, {"buyer", "alicebuilds"}} {
		q := s.q
		must(t, chromedp.Do(ctx, chromedp.Navigate(g.url("/console/search")), chromedp.WaitVisible(chromedp.CSS("#q")),
			chromedp.SetValue(chromedp.CSS("#by"), s.by), chromedp.SendKeys(chromedp.CSS("#q"), q),
			chromedp.Submit(chromedp.CSS("#q")), chromedp.WaitVisible(chromedp.CSS("table"))))
		found, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main table")))
		must(t, err)
		if !strings.Contains(found, licID) {
			t.Errorf("search %q did not find the licence:\n%s", q, found)
		}
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		must(t, err)
		if strings.Contains(html, consoleKey) {
			t.Error("the search page shows the key back")
		}
	}

	// The read-only user: the same queue item, no lever; a form forged
	// from the page with their own valid token is refused.
	g.writeKeys(strings.Replace(consoleKeysClean, "bob,,2099-01-01T00:00:00Z,,active", "bob,,2099-01-01T00:00:00Z,,revoked", 1))
	expectStatus(t, g.adminCall(http.MethodPost, "licenses/"+bobID+"/recheck", nil), http.StatusOK, "")
	rctx := consoleTab(t, "reader")
	must(t, chromedp.Do(rctx, chromedp.Navigate(g.url("/console/queue?kind=flagged")), chromedp.WaitVisible(chromedp.CSS("table"))))
	forms, err := chromedp.Run(rctx, chromedp.Evaluate[string](`String(document.querySelectorAll('form[method="post"]').length)`))
	must(t, err)
	if forms != "0" {
		t.Errorf("a read-only user's queue shows %s forms", forms)
	}
	must(t, chromedp.Do(rctx, chromedp.Navigate(g.url("/console/search")), chromedp.WaitVisible(chromedp.CSS("#q"))))
	forge := fmt.Sprintf(`(() => {
		const f = document.querySelector('form[action$="/search"]');
		f.action = '/console/licenses/%s/suspend';
		const r = document.createElement('input'); r.name = 'reason'; r.value = 'forged'; f.appendChild(r);
		f.submit();
	})()`, bobID)
	_, err = chromedp.Run(rctx, chromedp.Evaluate[any](forge))
	must(t, err)
	waitFor(t, 10*time.Second, "the forged form's answer", func() bool {
		loc, err := chromedp.Run(rctx, chromedp.Location())
		return err == nil && strings.HasSuffix(loc, "/suspend")
	})
	must(t, chromedp.Do(rctx, chromedp.WaitVisible(chromedp.CSS("h1"))))
	title, err := chromedp.Run(rctx, chromedp.Text(chromedp.CSS("h1")))
	must(t, err)
	if !strings.Contains(title, "could not be accepted") {
		t.Errorf("the read-only user's forged form got %q", title)
	}
	if st := g.adminCall(http.MethodGet, "licenses/"+bobID, nil); !strings.Contains(string(st.body), `"status":"flagged"`) {
		t.Errorf("the forged form changed bob's licence: %s", st.body)
	}

	// No page shows a key or a token.
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	must(t, err)
	for _, secret := range []string{consoleKey, consoleOtherKey, act.str("access_token"), act.str("refresh_token"), consolePassword} {
		if strings.Contains(html, secret) {
			t.Error("a console page shows a secret")
		}
	}
	if redisAddr != "" {
		assertNoSecretsInRedis(t, redisAddr, []string{consoleKey, consoleOtherKey, consolePassword})
	}
	t.Logf("screenshots in %s", shots)
}

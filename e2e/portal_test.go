package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/licensegate/licensegate/internal/browsertest"
	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/upstreams/envato/envatotest"
)

// The buyer portal in a real browser against the binary (SPEC section 12;
// issue 22): the installer's activation is refused with a portal_url; the
// buyer opens it, signs in with Envato (envatotest), sees the licence and
// its two installations, deactivates one, and the installer's activation
// on the new domain then succeeds.

const (
	portalClientID     = "e2e-portal-client"
	portalClientSecret = "e2e-portal-client-secret-0123"
	portalItem         = 17022701
)

func init() { noteSecret(portalClientSecret) }

// portalTemplate sells converter-pro on Envato with a buyer portal at
// /account.
const portalTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		{{STORAGE}}
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		source envato {
			token test-envato-token
			base_url {{SALES}}
		}
		product converter-pro {
			sources envato
			envato_item 17022701
			activations 2
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange
	}
	handle /account/* {
		license_portal {
			envato_oauth {
				client_id ` + portalClientID + `
				client_secret {env.LG_E2E_ENVATO_CLIENT_SECRET}
				redirect_uri http://127.0.0.1:{{PORT}}/account/auth/envato/callback
				base_url {{ENVATO}}
			}
		}
	}
}
`

// envatoSales is Envato's author sale API for envatoKey.
func envatoSales(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := answer("envato", r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPortalInABrowser(t *testing.T) {
	for _, storage := range []string{"embedded", "redis"} {
		t.Run(storage, func(t *testing.T) { portalInABrowser(t, storage) })
	}
}

func portalInABrowser(t *testing.T, storage string) {
	ctx := browsertest.New(t, 60*time.Second)
	env := envatotest.New(t, portalClientID, portalClientSecret)
	env.AddBuyer(envatotest.Buyer{Username: "alice", Purchases: []envatotest.Purchase{
		{Code: envatoKey, ItemID: portalItem, ItemName: "Converter Pro", License: "Extended License",
			SupportedUntil: "2099-03-09T01:54:28+11:00", SoldAt: "2016-09-07T10:54:28+10:00"},
	}})
	g := newGateway(t, "127.0.0.1:1")
	g.template = portalTemplate
	g.vars["SALES"] = envatoSales(t).URL
	g.vars["ENVATO"] = env.URL
	g.vars["STORAGE"] = "storage embedded " + filepath.Join(g.dir, "licensegate.db")
	redisAddr := ""
	if storage == "redis" {
		redisAddr = redistest.NewServer(t).Addr()
		g.vars["STORAGE"] = "storage redis redis://" + redisAddr + "/0"
	}
	g.extraEnv = append(g.extraEnv, "LG_E2E_ENVATO_CLIENT_SECRET="+portalClientSecret)
	env.RedirectURI = g.url("/account/auth/envato/callback")
	g.start()

	// Two installations fill the licence; a third is refused with a link.
	expectStatus(t, g.activate(envatoKey, "shop.example.com"), http.StatusCreated, "")
	expectStatus(t, g.activate(envatoKey, "blog.example.com"), http.StatusCreated, "")
	full := g.activate(envatoKey, "new.example.com")
	expectStatus(t, full, http.StatusConflict, "activation_limit_reached")
	portalURL := full.str("portal_url")
	if !strings.HasPrefix(portalURL, g.url("/account/licenses/lic_")) {
		t.Fatalf("409 portal_url %q, want the licence's page in the portal", portalURL)
	}
	shots := t.TempDir()

	// The link, signed out: the sign-in page.
	must(t, chromedp.Do(ctx, chromedp.Navigate(portalURL), chromedp.WaitVisible(chromedp.CSS("a.button"))))
	browsertest.Screenshot(t, ctx, shots, "portal-signin")
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("a.button"))))

	// Back from Envato, on that licence's page, with both installations.
	must(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table"))))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must(t, err)
	if loc != portalURL {
		t.Fatalf("after sign-in the browser is at %s, want %s", loc, portalURL)
	}
	main, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	must(t, err)
	for _, want := range []string{"shop.example.com", "blog.example.com", "2 of 2", "extended"} {
		if !strings.Contains(main, want) {
			t.Errorf("the licence page lacks %q:\n%s", want, main)
		}
	}
	browsertest.Screenshot(t, ctx, shots, "portal-licence")

	// Deactivate shop.example.com: the confirm page, then yes.
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href$="/deactivate"]`)), chromedp.WaitVisible(chromedp.CSS("button.danger"))))
	confirm, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	must(t, err)
	domain := "shop.example.com"
	if !strings.Contains(confirm, domain) {
		domain = "blog.example.com"
	}
	browsertest.Screenshot(t, ctx, shots, "portal-confirm")
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS(".flash"))))
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	must(t, err)
	if !strings.Contains(flash, "Deactivated: "+domain) {
		t.Errorf("after deactivating, the flash says %q", flash)
	}
	browsertest.Screenshot(t, ctx, shots, "portal-deactivated")

	// The installer's activation on the new domain now succeeds.
	expectStatus(t, g.activate(envatoKey, "new.example.com"), http.StatusCreated, "")
	audit := g.adminCall(http.MethodGet, "audit?limit=100", nil)
	if !strings.Contains(string(audit.body), `"actor":"buyer:envato:alice"`) {
		t.Errorf("the deactivation is not audited as the buyer's:\n%s", audit.body)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	must(t, err)
	for _, secret := range []string{envatoKey, portalClientSecret} {
		if strings.Contains(html, secret) {
			t.Errorf("the page shows a secret")
		}
	}
	issued := env.Issued()
	if len(issued) == 0 {
		t.Fatal("the sign-in got no Envato token")
	}
	for _, tok := range issued {
		noteSecret(tok) // the log scan looks for them too
		if strings.Contains(html, tok) {
			t.Errorf("the page shows an Envato token")
		}
	}
	if redisAddr != "" {
		assertNoSecretsInRedis(t, redisAddr, append([]string{envatoKey, portalClientSecret}, issued...))
	}
	t.Log(fmt.Sprintf("screenshots in %s", shots))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

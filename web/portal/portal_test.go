package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/smtptest"
	"github.com/licensegate/licensegate/internal/teststore"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/envato"
	"github.com/licensegate/licensegate/upstreams/envato/envatotest"
	"github.com/licensegate/licensegate/upstreams/static"
	"github.com/licensegate/licensegate/web"
	"github.com/licensegate/licensegate/web/portal"
)

// The buyer portal over HTTP (SPEC section 12), against a real service
// on both stores, Envato's OAuth and buyer API played by envatotest and
// its author sale API by a small counterpart.

const (
	clientID     = "portal-test-client"
	clientSecret = "portal-test-client-secret"
	item         = 17022701
	aliceCode1   = "11111111-1111-4111-8111-111111111111"
	aliceCode2   = "22222222-2222-4222-8222-222222222222"
	bobCode      = "33333333-3333-4333-8333-333333333333"
	carolKey     = "THEME-CAROL-0001"
	daveKey      = "THEME-DAVE-0002"
)

// salesAPI is Envato's author sale API for the three codes.
func salesAPI(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := r.URL.Query().Get("code")
		w.Header().Set("Content-Type", "application/json")
		if code != aliceCode1 && code != aliceCode2 && code != bobCode && !strings.HasPrefix(code, "aaaaaaaa-") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":404,"description":"No sale belonging to the current user found with that code"}`)
			return
		}
		fmt.Fprintf(w, `{"amount":"19.84","sold_at":"2016-09-07T10:54:28+10:00","license":"Regular License","support_amount":"0.00",
			"supported_until":"2099-03-09T01:54:28+11:00","item":{"id":%d,"name":"Converter Pro"},"buyer":"someone","purchase_count":1}`, item)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fixture is a portal at srv/account over a service with alice's two
// licences (the first with two installations) and bob's one.
type fixture struct {
	t      *testing.T
	master *secret.Master
	srv    *httptest.Server
	env    *envatotest.Server
	smtp   *smtptest.Server
	svc    *gateway.Service
	store  store.Store
	ids    map[string]string // code -> licence id
}

// stores are the backends the tests run on.
func stores(*testing.T) map[string]func(*testing.T) store.Store { return teststore.Backends }

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	sales := salesAPI(t)
	products := upstreams.ProductMap{{Product: "converter-pro", VendorID: fmt.Sprint(item)}}
	res, err := upstreams.BuildResilient(upstreams.ResilienceConfig{Timeout: 2 * time.Second,
		Rate: upstreams.Rate{Calls: 6000, Period: time.Minute}, Burst: 100}, func(c upstreams.Client) (upstreams.Source, error) {
		return envato.New(envato.Config{BaseURL: sales.URL, Client: c, Products: products, Token: "author-token"})
	})
	if err != nil {
		t.Fatal(err)
	}
	master, err := secret.New([]byte("portal-test-master-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(keys, []byte("key,product,type,licensed_to,email\n"+
		carolKey+",theme-pro,regular,Carol,Carol@Example.com\n"+daveKey+",theme-pro,regular,Dave,dave@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stat, err := static.New("static", keys)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := gateway.New(gateway.Config{Store: st, Master: master,
		Sources: map[string]upstreams.Source{"envato": res, "static": stat},
		Products: map[string]*gateway.Product{
			"converter-pro": {Name: "converter-pro", Sources: []string{"envato"}, Rules: policy.Rules{Activations: 2}},
			"theme-pro":     {Name: "theme-pro", Sources: []string{"static"}, Rules: policy.Rules{Activations: 2}},
		},
		ProductOrder: []string{"converter-pro", "theme-pro"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, master: master, svc: svc, store: st, ids: map[string]string{}, smtp: smtptest.New(t)}
	f.env = envatotest.New(t, clientID, clientSecret)
	f.env.AddBuyer(envatotest.Buyer{Username: "alice", Purchases: []envatotest.Purchase{
		{Code: aliceCode1, ItemID: item, ItemName: "Converter Pro", License: "Regular License", SupportedUntil: "2099-03-09T01:54:28+11:00", SoldAt: "2016-09-07T10:54:28+10:00"},
		{Code: aliceCode2, ItemID: item, ItemName: "Converter Pro", License: "Regular License", SoldAt: "2017-01-01T00:00:00+00:00"},
		{Code: "99999999-9999-4999-8999-999999999999", ItemID: 1, ItemName: "Another author's item", License: "Regular License", SoldAt: "2017-01-01T00:00:00+00:00"},
	}})
	f.env.AddBuyer(envatotest.Buyer{Username: "bob", Purchases: []envatotest.Purchase{
		{Code: bobCode, ItemID: item, ItemName: "Converter Pro", License: "Regular License", SoldAt: "2018-01-01T00:00:00+00:00"},
	}})
	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.srv.Close)
	f.env.RedirectURI = f.srv.URL + "/account/auth/envato/callback"
	p, err := portal.Build(portal.Options{EnvatoOAuth: &portal.EnvatoOAuth{ClientID: clientID, ClientSecret: clientSecret,
		RedirectURI: f.env.RedirectURI, BaseURL: f.env.URL},
		EmailLink: &portal.EmailLink{SMTP: f.smtp.URL, From: "Acme Licences <licences@example.com>", LinkTTL: "15m"}},
		portal.Env{Service: svc, Master: master, MailTLS: f.smtp.ClientTLS, Source: func(name string) (*upstreams.Resilient, upstreams.ProductMap, string, bool) {
			return res, products, sales.URL, name == "envato"
		}})
	if err != nil {
		t.Fatal(err)
	}
	h = p
	for code, domains := range map[string][]string{aliceCode1: {"shop.example.com", "blog.example.com"}, aliceCode2: {"alice2.example.com"},
		bobCode: {"bob.example.com"}, carolKey: {"carol.example.com"}, daveKey: {"dave.example.com"}} {
		for _, d := range domains {
			a, err := svc.Activate(context.Background(), gateway.ActivateRequest{Key: code, Domain: d, IP: "203.0.113.7"})
			if err != nil {
				t.Fatalf("activating %s on %s: %v", code, d, err)
			}
			f.ids[code] = a.License.ID
		}
	}
	return f
}

// browser is a cookie-keeping client that follows redirects, as a
// browser would.
func (f *fixture) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

type page struct {
	status int
	url    string
	body   string
	header http.Header
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL.String(), string(b), resp.Header}
}

func post(t *testing.T, c *http.Client, u string, form url.Values) page {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL.String(), string(b), resp.Header}
}

// refreshToken matches a refresh token.
var refreshToken = regexp.MustCompile(tokens.RefreshPrefix + `[A-Za-z0-9_-]{20,}`)

var csrfPattern = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token on %s", p.url)
	}
	return m[1]
}

// signIn signs a browser in as username through Envato.
func (f *fixture) signIn(c *http.Client, username, returnTo string) page {
	f.t.Helper()
	f.env.SignInAs(username)
	return get(f.t, c, f.srv.URL+"/account/auth/envato?"+url.Values{"return": {returnTo}}.Encode())
}

func TestPortal(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) { testPortal(t, newFixture(t, open(t))) })
	}
}

func testPortal(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.browser()
	base := f.srv.URL + "/account"

	// Signed out: the sign-in page, with the security headers.
	home := get(t, c, base+"/")
	if home.status != 200 || !strings.Contains(home.body, "Sign in with Envato") {
		t.Fatalf("signed-out home = %d %s", home.status, home.body)
	}
	for k, v := range map[string]string{"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if !strings.Contains(home.header.Get(k), v) {
			t.Errorf("%s: %q, want %q", k, home.header.Get(k), v)
		}
	}

	// The 409's deep link: signed out it is the sign-in page; after the
	// sign-in the buyer lands on that licence.
	lic1 := f.ids[aliceCode1]
	deep := "/account/licenses/" + lic1
	if p := get(t, c, f.srv.URL+deep); !strings.Contains(p.body, url.QueryEscape(deep)) {
		t.Fatalf("signed-out deep link does not return there after sign-in: %s", p.body)
	}
	licPage := f.signIn(c, "alice", deep)
	if licPage.status != 200 || !strings.HasSuffix(licPage.url, deep) {
		t.Fatalf("after sign-in at %s: %d", licPage.url, licPage.status)
	}
	for _, want := range []string{"shop.example.com", "blog.example.com", "2 of 2", "alice", "I renewed my support"} {
		if !strings.Contains(licPage.body, want) {
			t.Errorf("licence page lacks %q", want)
		}
	}
	list := get(t, c, base+"/")
	if strings.Count(list.body, "/account/licenses/lic_") != 2 || strings.Contains(list.body, f.ids[bobCode]) {
		t.Errorf("alice's list does not show exactly her two licences:\n%s", list.body)
	}
	for _, secret := range []string{aliceCode1, aliceCode2, bobCode, clientSecret} {
		if strings.Contains(list.body+licPage.body, secret) {
			t.Errorf("a page shows a secret: %s", secret)
		}
	}

	// Bob's licence is not alice's: not found, and not deactivatable.
	if p := get(t, c, base+"/licenses/"+f.ids[bobCode]); p.status != 403 {
		t.Errorf("another buyer's licence = %d, want 403", p.status)
	}
	bobDetail, _ := f.svc.License(ctx, f.ids[bobCode])
	bobIns := bobDetail.Installations[0].ID
	if p := post(t, c, base+"/licenses/"+f.ids[bobCode]+"/installations/"+bobIns+"/deactivate", url.Values{"csrf_token": {csrf(t, licPage)}}); p.status != 403 {
		t.Errorf("deactivating another buyer's installation = %d, want 403", p.status)
	}
	if d, _ := f.svc.License(ctx, f.ids[bobCode]); activeCount(d) != 1 {
		t.Errorf("alice's session changed bob's licence")
	}
	// an installation of bob's named under alice's own licence is not found
	if p := post(t, c, base+"/licenses/"+lic1+"/installations/"+bobIns+"/deactivate", url.Values{"csrf_token": {csrf(t, licPage)}}); p.status != 404 {
		t.Errorf("bob's installation under alice's licence = %d, want 404", p.status)
	}
	// a purchase code opens nothing: the portal takes none
	if p := get(t, f.browser(), base+"/licenses/"+lic1+"?license_key="+aliceCode1+"&code="+aliceCode1); !strings.Contains(p.body, "Sign in with Envato") {
		t.Errorf("a purchase code in the URL opened the licence")
	}
	if p := post(t, f.browser(), base+"/", url.Values{"license_key": {aliceCode1}}); p.status != 405 {
		t.Errorf("posting a purchase code = %d, want 405", p.status)
	}
	// the session, decoded, holds the buyer's name and licence ids only
	u, _ := url.Parse(base)
	sessions, err := web.NewSessions(web.SessionsConfig{Master: f.master, CookieName: "__Host-licensegate_portal", LocalDevelopment: true})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, base+"/", nil)
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	sess, ok := sessions.Read(req)
	if !ok || sess.Identity != "envato:alice" || len(sess.Licenses) != 2 {
		t.Errorf("decoded session: %+v, %v", sess, ok)
	}
	decoded := fmt.Sprintf("%+v", sess)
	for _, secret := range append([]string{aliceCode1, aliceCode2, clientSecret}, f.env.Issued()...) {
		if strings.Contains(decoded, secret) {
			t.Errorf("the decoded session holds a secret")
		}
	}
	// the cookies hold no secret and no readable identity
	for _, ck := range c.Jar.Cookies(u) {
		for _, secret := range []string{aliceCode1, aliceCode2, "alice", clientSecret, "lic_"} {
			if strings.Contains(ck.Value, secret) {
				t.Errorf("cookie %s holds %q in the clear", ck.Name, secret)
			}
		}
	}

	// Deactivate: a confirm step; a POST without the CSRF token changes
	// nothing; with it the slot is freed and audited as alice's.
	detail, _ := f.svc.License(ctx, lic1)
	var shop string
	for _, in := range detail.Installations {
		if in.Domain == "shop.example.com" {
			shop = in.ID
		}
	}
	target := base + "/licenses/" + lic1 + "/installations/" + shop + "/deactivate"
	confirm := get(t, c, target)
	if confirm.status != 200 || !strings.Contains(confirm.body, "Yes, deactivate") {
		t.Fatalf("confirm page = %d", confirm.status)
	}
	if p := post(t, c, target, url.Values{}); p.status != 403 {
		t.Errorf("deactivate without CSRF = %d, want 403", p.status)
	}
	if p := post(t, c, target, url.Values{"csrf_token": {"forged"}}); p.status != 403 {
		t.Errorf("deactivate with a forged token = %d, want 403", p.status)
	}
	if d, _ := f.svc.License(ctx, lic1); activeCount(d) != 2 {
		t.Fatalf("a refused form changed the licence")
	}
	done := post(t, c, target, url.Values{"csrf_token": {csrf(t, confirm)}})
	if done.status != 200 || !strings.Contains(done.body, "Deactivated: shop.example.com") || !strings.Contains(done.body, "1 of 2") {
		t.Fatalf("after deactivating: %d %s", done.status, done.body)
	}
	if d, _ := f.svc.License(ctx, lic1); activeCount(d) != 1 {
		t.Errorf("the installation is still active")
	}
	evs, _ := f.store.Audit(ctx, store.AuditQuery{Limit: 1000})
	var audited bool
	for _, ev := range evs {
		if ev.Action == store.AuditInstallationDeactivated && ev.InstallationID == shop {
			audited = ev.Actor == "buyer:envato:alice"
		}
	}
	if !audited {
		t.Errorf("the deactivation is not audited with actor buyer:envato:alice")
	}
	// The slot is free: an activation on a new domain succeeds.
	if _, err := f.svc.Activate(ctx, gateway.ActivateRequest{Key: aliceCode1, Domain: "new.example.com", Product: "converter-pro", IP: "203.0.113.8"}); err != nil {
		t.Errorf("activation on a new domain after freeing a slot: %v", err)
	}

	// I renewed my support: a check now, then the cooldown.
	renewed := post(t, c, base+"/licenses/"+lic1+"/refresh", url.Values{"csrf_token": {csrf(t, done)}})
	if !strings.Contains(renewed.body, "checked with the marketplace just now") {
		t.Errorf("I renewed: %s", flashOf(renewed.body))
	}
	again := post(t, c, base+"/licenses/"+lic1+"/refresh", url.Values{"csrf_token": {csrf(t, renewed)}})
	if !strings.Contains(again.body, "checked a moment ago") {
		t.Errorf("I renewed twice: %s", flashOf(again.body))
	}

	// Download my data: JSON of her licences, no code, no token.
	data := get(t, c, base+"/data.json")
	var out struct {
		Licenses []map[string]any `json:"licenses"`
	}
	if err := json.Unmarshal([]byte(data.body), &out); err != nil || len(out.Licenses) != 2 || !strings.Contains(data.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("data.json = %v, %d licences: %s", err, len(out.Licenses), data.body)
	}
	if strings.Contains(data.body, aliceCode1) || refreshToken.MatchString(data.body) || strings.Contains(data.body, "eyJ") {
		t.Errorf("data.json holds a code or token")
	}
	for _, field := range []string{"client_ip", "unknown_streak", "last_outcome", "locked", "next_check_at"} {
		if strings.Contains(data.body, `"`+field+`"`) {
			t.Errorf("data.json holds the author's field %s", field)
		}
	}

	// Sign out: the session is gone.
	out2 := post(t, c, base+"/signout", url.Values{"csrf_token": {csrf(t, again)}})
	if !strings.Contains(out2.body, "Sign in with Envato") {
		t.Errorf("after sign-out: %s", out2.body)
	}
	if p := get(t, c, base+"/licenses/"+lic1); !strings.Contains(p.body, "Sign in with Envato") {
		t.Errorf("after sign-out the licence page is shown")
	}
}

// redeem opens a mailed link and presses its Sign in button.
func redeem(t *testing.T, c *http.Client, link string) page {
	t.Helper()
	return post(t, c, link, url.Values{"csrf_token": {csrf(t, get(t, c, link))}})
}

// flashOf is a page's flash message, for a failure's message.
func flashOf(body string) string {
	if i := strings.Index(body, `class="flash`); i >= 0 {
		return body[i:min(len(body), i+300)]
	}
	return "(no flash)"
}

func activeCount(d *gateway.LicenseDetail) int {
	n := 0
	for _, in := range d.Installations {
		if in.Status == "active" {
			n++
		}
	}
	return n
}

// TestPortalSignInFailures: an Envato outage is "try again shortly" (503),
// never "no purchases"; a callback for another browser's state signs
// nobody in; a cancelled authorization asks to try again.
func TestPortalSignInFailures(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	base := f.srv.URL + "/account"

	for _, o := range []envatotest.Outage{envatotest.ServerError, envatotest.RateLimited, envatotest.Hang, envatotest.Garbage} {
		f.env.SetOutage(o)
		c := f.browser()
		p := f.signIn(c, "alice", "/account/")
		if p.status != 503 || !strings.Contains(p.body, "Try again shortly") || strings.Contains(p.body, "No licences") {
			t.Errorf("sign-in during outage %d = %d %s", o, p.status, p.body)
		}
		if p := get(t, c, base+"/"); !strings.Contains(p.body, "Sign in with Envato") {
			t.Errorf("outage %d: a session was started anyway", o)
		}
	}
	f.env.SetOutage(envatotest.Up)

	// A callback replayed after it signed someone in is refused: its
	// state was spent.
	c2 := f.browser()
	var callback string
	c2.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.Contains(req.URL.Path, "/auth/envato/callback") {
			callback = req.URL.String()
		}
		return nil
	}
	if p := f.signIn(c2, "alice", "/account/"); p.status != 200 || callback == "" {
		t.Fatalf("sign-in = %d, callback %q", p.status, callback)
	}
	if p := get(t, c2, callback); p.status != 403 {
		t.Errorf("the callback replayed = %d, want 403", p.status)
	}

	// A callback with a state this browser did not start.
	other := f.browser()
	if p := get(t, other, base+"/auth/envato/callback?code=x&state=forged"); p.status != 403 {
		t.Errorf("callback with a foreign state = %d, want 403", p.status)
	}
	if p := get(t, other, base+"/"); !strings.Contains(p.body, "Sign in with Envato") {
		t.Errorf("a forged callback signed someone in")
	}

	// The buyer refused at Envato: the callback carries error=access_denied.
	c3 := f.browser()
	c3.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start, err := c3.Get(base + "/auth/envato") // sets the sign-in cookie, stops before Envato
	if err != nil {
		t.Fatal(err)
	}
	start.Body.Close()
	loc, err := url.Parse(start.Header.Get("Location"))
	if err != nil || loc.Query().Get("code_challenge") == "" {
		t.Fatalf("the sign-in does not go to Envato with a PKCE challenge: %q", start.Header.Get("Location"))
	}
	state := loc.Query().Get("state")
	if p := get(t, c3, base+"/auth/envato/callback?error=access_denied&state="+url.QueryEscape(state)); p.status != 403 || !strings.Contains(p.body, "Sign-in not completed") {
		t.Errorf("a cancelled sign-in = %d %s", p.status, p.body)
	}
}

// TestPortalEmailLink: sign-in by e-mail link, through a real SMTP server
// with STARTTLS. A known address gets a single-use link; an unknown one
// gets the same page and no mail; the link signs in to that address's
// licences only, once.
func TestPortalEmailLink(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) { testPortalEmailLink(t, newFixture(t, open(t))) })
	}
}

func testPortalEmailLink(t *testing.T, f *fixture) {
	ctx := context.Background()
	base := f.srv.URL + "/account"
	c := f.browser()
	ask := func(c *http.Client, email string) page {
		t.Helper()
		form := get(t, c, base+"/")
		return post(t, c, base+"/auth/email", url.Values{"csrf_token": {csrf(t, form)}, "email": {email}})
	}
	known := ask(c, "carol@example.com") // the file says Carol@Example.com
	if known.status != 200 || !strings.Contains(known.body, "Check your inbox") {
		t.Fatalf("asking for a link = %d %s", known.status, known.body)
	}
	msgs := f.smtp.Await(t, 1, 10*time.Second)
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "carol@example.com" || !m.TLS || m.Subject != "Your sign-in link" {
		t.Fatalf("mail %+v", m)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(base) + `/auth/email/[A-Za-z0-9_-]+`).FindString(m.Body)
	if link == "" {
		t.Fatalf("no sign-in link in the mail:\n%s", m.Body)
	}

	// An unknown address: the same page, and no mail (a known one asked
	// after it arrives first... or after: the count shows it).
	unknown := ask(f.browser(), "nobody@example.com")
	if unknown.status != known.status || unknown.body != known.body {
		t.Errorf("an unknown address gets another page than a known one")
	}
	ask(f.browser(), "dave@example.com")
	if got := f.smtp.Await(t, 2, 10*time.Second); len(got) != 2 || got[1].To[0] != "dave@example.com" {
		t.Errorf("mails after an unknown address and dave's: %+v", got)
	}
	// a form without its token is refused
	if p := post(t, f.browser(), base+"/auth/email", url.Values{"email": {"carol@example.com"}}); p.status != 403 {
		t.Errorf("link request without CSRF = %d, want 403", p.status)
	}

	// Opening the link (a mail scanner's prefetch too) spends nothing, and
	// its button's post needs the page's token.
	if p := get(t, f.browser(), link); p.status != 200 || !strings.Contains(p.body, "Sign in to your licences") {
		t.Fatalf("opening the link = %d", p.status)
	}
	if p := post(t, f.browser(), link, url.Values{}); p.status != 403 {
		t.Errorf("the link's post without its page's token = %d, want 403", p.status)
	}
	// The link signs in (in another browser: the mail client's) to
	// carol's licence, and no one else's.
	mailer := f.browser()
	home := redeem(t, mailer, link)
	if home.status != 200 || !strings.Contains(home.body, "theme-pro") || strings.Count(home.body, "/account/licenses/lic_") != 1 {
		t.Fatalf("after the link: %d %s", home.status, home.body)
	}
	if strings.Contains(home.body, "carol@example.com") || strings.Contains(home.body, "Carol@Example.com") {
		t.Errorf("the page shows the address")
	}
	if p := get(t, mailer, base+"/licenses/"+f.ids[daveKey]); p.status != 403 {
		t.Errorf("dave's licence from carol's session = %d, want 403", p.status)
	}
	// once only
	if p := redeem(t, f.browser(), link); p.status != 403 || !strings.Contains(p.body, "does not work any more") {
		t.Errorf("the link a second time = %d", p.status)
	}
	// a form past the kit's bound (web.CSRF reads at most 64 KiB) is
	// refused, its token with it, not read whole
	bc := f.browser()
	big := url.Values{"csrf_token": {csrf(t, get(t, bc, base+"/"))}, "email": {"dave@example.com"}, "pad": {strings.Repeat("a", 64<<10)}}
	if p := post(t, bc, base+"/auth/email", big); p.status != 403 {
		t.Errorf("a 64 KiB form = %d, want 403", p.status)
	}
	// carol's deactivation is audited as buyer:email:<hash prefix>
	lic := get(t, mailer, base+"/licenses/"+f.ids[carolKey])
	d, _ := f.svc.License(ctx, f.ids[carolKey])
	target := base + "/licenses/" + f.ids[carolKey] + "/installations/" + d.Installations[0].ID + "/deactivate"
	post(t, mailer, target, url.Values{"csrf_token": {csrf(t, lic)}})
	evs, _ := f.store.Audit(ctx, store.AuditQuery{Limit: 1000})
	want := f.svc.EmailActor("carol@example.com")
	var actor string
	for _, ev := range evs {
		if ev.Action == store.AuditInstallationDeactivated && ev.LicenseID == f.ids[carolKey] {
			actor = ev.Actor
		}
	}
	if actor != want || !strings.HasPrefix(actor, "buyer:email:") || strings.Contains(actor, "carol") {
		t.Errorf("deactivation audited as %q, want %q", actor, want)
	}

	// Per client network: past 10 requests in 10 minutes, 429.
	var last page
	for range 12 {
		last = ask(f.browser(), "someone@example.com")
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Errorf("the 12th link request from one network = %d, want 429 with Retry-After", last.status)
	}
}

// TestPortalBuyerWithManyLicences: an agency with 80 licences (more than
// a session cookie holds) signs in, sees them all and manages one.
func TestPortalBuyerWithManyLicences(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	ctx := context.Background()
	const n = 80
	var purchases []envatotest.Purchase
	var last string
	for i := range n {
		code := fmt.Sprintf("aaaaaaaa-aaaa-4aaa-8aaa-%012d", i)
		purchases = append(purchases, envatotest.Purchase{Code: code, ItemID: item, ItemName: "Converter Pro", License: "Regular License", SoldAt: "2020-01-01T00:00:00+00:00"})
		a, err := f.svc.Activate(ctx, gateway.ActivateRequest{Key: code, Domain: fmt.Sprintf("client%02d.example.com", i), IP: "203.0.113.7"})
		if err != nil {
			t.Fatal(err)
		}
		last = a.License.ID
	}
	f.env.AddBuyer(envatotest.Buyer{Username: "agency", Purchases: purchases})
	c := f.browser()
	home := f.signIn(c, "agency", "/account/")
	if home.status != 200 || strings.Count(home.body, "/account/licenses/lic_") != n {
		t.Fatalf("the agency's list = %d with %d licences, want %d", home.status, strings.Count(home.body, "/account/licenses/lic_"), n)
	}
	u, _ := url.Parse(f.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if len(ck.Value) > 4000 {
			t.Errorf("cookie %s is %d bytes", ck.Name, len(ck.Value))
		}
	}
	page := get(t, c, f.srv.URL+"/account/licenses/"+last)
	if page.status != 200 || !strings.Contains(page.body, "client79.example.com") {
		t.Fatalf("a licence of the agency's = %d", page.status)
	}
	if p := get(t, c, f.srv.URL+"/account/licenses/"+f.ids[aliceCode1]); p.status != 403 {
		t.Errorf("alice's licence from the agency's session = %d, want 403", p.status)
	}
}

// "This is staging": a buyer marks one of their production installations
// a staging copy, which frees its slot, within the licence's free staging
// cap; the form needs its CSRF token; the change is audited as theirs.
func TestPortalMarkStaging(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	ctx := context.Background()
	base := f.srv.URL + "/account"
	c := f.browser()
	f.signIn(c, "alice", "")
	lic1 := f.ids[aliceCode1]
	detail, _ := f.svc.License(ctx, lic1)
	var blog string
	for _, in := range detail.Installations {
		if in.Domain == "blog.example.com" {
			blog = in.ID
		}
	}
	licPage := get(t, c, base+"/licenses/"+lic1)
	target := base + "/licenses/" + lic1 + "/installations/" + blog + "/staging"
	if !strings.Contains(licPage.body, "/installations/"+blog+"/staging") || !strings.Contains(licPage.body, "2 of 2") {
		t.Fatalf("the licence page offers no staging mark, or the slots are not 2 of 2:\n%s", licPage.body)
	}
	confirm := get(t, c, target)
	if confirm.status != 200 || !strings.Contains(confirm.body, "Yes, it is a staging copy") {
		t.Fatalf("confirm page = %d", confirm.status)
	}
	if p := post(t, c, target, url.Values{}); p.status != 403 {
		t.Errorf("staging without CSRF = %d, want 403", p.status)
	}
	done := post(t, c, target, url.Values{"csrf_token": {csrf(t, confirm)}})
	if done.status != 200 || !strings.Contains(done.body, "Marked as a staging copy: blog.example.com") || !strings.Contains(done.body, "1 of 2") {
		t.Fatalf("after marking: %d %s", done.status, flashOf(done.body))
	}
	evs, _ := f.store.Audit(ctx, store.AuditQuery{Limit: 1000})
	audited := false
	for _, ev := range evs {
		audited = audited || ev.Action == store.AuditInstallationStaging && ev.InstallationID == blog && ev.Actor == "buyer:envato:alice"
	}
	if !audited {
		t.Error("the mark is not audited with actor buyer:envato:alice")
	}
	// The freed slot takes a new production domain.
	if _, err := f.svc.Activate(ctx, gateway.ActivateRequest{Key: aliceCode1, Domain: "third.example.com"}); err != nil {
		t.Fatalf("the freed slot: %v", err)
	}
	// Past the cap (3 free staging installs outside a production domain)
	// the mark is refused with the reason, and nothing changes.
	for _, d := range []string{"a.wpengine.com", "b.wpengine.com"} {
		if _, err := f.svc.Activate(ctx, gateway.ActivateRequest{Key: aliceCode1, Domain: d}); err != nil {
			t.Fatalf("staging host %s: %v", d, err)
		}
	}
	detail, _ = f.svc.License(ctx, lic1)
	var shop string
	for _, in := range detail.Installations {
		if in.Domain == "shop.example.com" {
			shop = in.ID
		}
	}
	target = base + "/licenses/" + lic1 + "/installations/" + shop + "/staging"
	refused := post(t, c, target, url.Values{"csrf_token": {csrf(t, get(t, c, target))}})
	if !strings.Contains(flashOf(refused.body), "free staging installation") {
		t.Fatalf("over the cap: %q", flashOf(refused.body))
	}
	if d, _ := f.svc.License(ctx, lic1); d.Installations[0].InstallClass != "production" {
		t.Errorf("a refused mark changed the installation: %+v", d.Installations[0])
	}
}

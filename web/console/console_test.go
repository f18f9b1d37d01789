package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/internal/teststore"
	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/static"
	"github.com/licensegate/licensegate/web/console"
)

// The console over a service of the author's own key file, on each
// store, with the signed-in user given by a test header in place of
// Caddy's {http.auth.user.id} (the Caddy module's test puts basic_auth
// in front).

const userHeader = "X-Test-User"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	svc   *gateway.Service
	store store.Store
	srv   *httptest.Server
	keys  string
	clock *clock
	logs  *observer.ObservedLogs
}

const keyHeader = "key,product,type,licensed_to,email,status\n"

// keyRows are the key file's licences: key -> row.
var keyRows = map[string]string{
	"KEY-ALICE-0001": "KEY-ALICE-0001,app,regular,alice,alice@example.com,active",
	"KEY-BOB-0002":   "KEY-BOB-0002,app,regular,bob,bob@example.com,active",
}

// stores are the backends the tests run on.
func stores(*testing.T) map[string]func(*testing.T) store.Store { return teststore.Backends }

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	f := &fixture{t: t, store: st, keys: filepath.Join(t.TempDir(), "keys.csv"), clock: &clock{t: time.Now().Truncate(time.Second)}}
	f.writeKeys(nil)
	src, err := static.New("static", f.keys)
	if err != nil {
		t.Fatal(err)
	}
	master, err := secret.New([]byte("console-test-master-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = gateway.New(gateway.Config{Store: st, Master: master, Now: f.clock.Now,
		Sources:      map[string]upstreams.Source{"static": src},
		Products:     map[string]*gateway.Product{"app": {Name: "app", Sources: []string{"static"}, Rules: policy.Rules{Activations: 2}}},
		ProductOrder: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	f.logs = logs
	c, err := console.New(console.Config{Service: f.svc, Master: master, ReadOnly: []string{"reader"}, Logger: zap.New(core),
		User: func(r *http.Request) string { return r.Header.Get(userHeader) }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(c)
	t.Cleanup(f.srv.Close)
	return f
}

// writeKeys writes the key file, with statuses changed as given.
func (f *fixture) writeKeys(status map[string]string) {
	f.t.Helper()
	var b strings.Builder
	b.WriteString(keyHeader)
	for key, row := range keyRows {
		if s, ok := status[key]; ok {
			row = strings.TrimSuffix(row, ",active") + "," + s
		}
		b.WriteString(row + "\n")
	}
	if err := os.WriteFile(f.keys, []byte(b.String()), 0o600); err != nil {
		f.t.Fatal(err)
	}
	future := time.Now().Add(time.Duration(len(status)+1) * time.Second) // a new mtime the source notices
	_ = os.Chtimes(f.keys, future, future)
}

func (f *fixture) activate(key, domain string) *gateway.Activation {
	f.t.Helper()
	a, err := f.svc.Activate(context.Background(), gateway.ActivateRequest{Key: key, Domain: domain})
	if err != nil {
		f.t.Fatalf("activating %s on %s: %v", key, domain, err)
	}
	return a
}

// browser is a person's browser signed in to the console as user.
type browser struct {
	t    *testing.T
	c    *http.Client
	user string
}

func (f *fixture) browser(user string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: f.t, user: user, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

type page struct {
	status int
	url    string
	body   string
	header http.Header
}

func (b *browser) do(method, u string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.user != "" {
		req.Header.Set(userHeader, b.user)
	}
	// A redirect keeps the user: the authentication handler would see
	// the browser's credentials again.
	b.c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if b.user != "" {
			r.Header.Set(userHeader, b.user)
		}
		return nil
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL.String(), string(raw), resp.Header}
}

func (b *browser) get(u string) page                   { return b.do(http.MethodGet, u, nil) }
func (b *browser) post(u string, form url.Values) page { return b.do(http.MethodPost, u, form) }

var csrfPattern = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token on %s", p.url)
	}
	return m[1]
}

func (f *fixture) status(id string) string {
	f.t.Helper()
	d, err := f.svc.License(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return d.License.Status
}

// TestConsoleRefusesWithoutUser: without an authenticated user every
// console URL is 403, changes nothing, and the log says what to put in
// front.
func TestConsoleRefusesWithoutUser(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	a := f.activate("KEY-ALICE-0001", "alice.example")
	id := a.License.ID
	anon := f.browser("")
	for _, u := range []string{"/console", "/console/", "/console/queue", "/console/search", "/console/licenses/" + id,
		"/console/deliveries", "/console/versions", "/console/nope"} {
		if p := anon.get(f.srv.URL + u); p.status != http.StatusForbidden {
			t.Errorf("GET %s without a user: %d", u, p.status)
		}
	}
	for _, u := range []string{"/console/licenses/" + id + "/suspend", "/console/installations/" + a.InstallationID + "/deactivate", "/console/search"} {
		if p := anon.post(f.srv.URL+u, url.Values{"reason": {"x"}, "q": {"alice"}}); p.status != http.StatusForbidden {
			t.Errorf("POST %s without a user: %d", u, p.status)
		}
	}
	if got := f.status(id); got != "active" {
		t.Errorf("licence %s after refused requests", got)
	}
	if d, _ := f.svc.License(context.Background(), id); d.Installations[0].Status != "active" {
		t.Errorf("installation %s after refused requests", d.Installations[0].Status)
	}
	hint := f.logs.FilterMessageSnippet("basic_auth").Len()
	if hint == 0 {
		t.Errorf("no log line names basic_auth: %v", f.logs.All())
	}
}

// TestConsoleCSRF: a form without the token, with another user's token,
// or from a read-only user changes nothing.
func TestConsoleCSRF(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	id := f.activate("KEY-ALICE-0001", "alice.example").License.ID
	alice, mallory, reader := f.browser("alice"), f.browser("mallory"), f.browser("reader")
	lic := alice.get(f.srv.URL + "/console/licenses/" + id)
	if lic.status != http.StatusOK || !strings.Contains(lic.body, "/console/licenses/"+id+"/suspend") {
		t.Fatalf("licence page: %d\n%s", lic.status, lic.body)
	}
	token := csrf(t, lic)
	suspend := f.srv.URL + "/console/licenses/" + id + "/suspend"
	if p := alice.post(suspend, url.Values{"reason": {"no token"}}); p.status != http.StatusForbidden {
		t.Errorf("no token: %d", p.status)
	}
	if p := alice.post(suspend, url.Values{"reason": {"wrong"}, "csrf_token": {"x" + token}}); p.status != http.StatusForbidden {
		t.Errorf("wrong token: %d", p.status)
	}
	mallory.get(f.srv.URL + "/console/")
	if p := mallory.post(suspend, url.Values{"reason": {"alice's token"}, "csrf_token": {token}}); p.status != http.StatusForbidden {
		t.Errorf("another user's token: %d", p.status)
	}
	rp := reader.get(f.srv.URL + "/console/licenses/" + id)
	if strings.Contains(rp.body, "<form method=\"post\" action=\"/console/licenses/") || strings.Contains(rp.body, "/suspend\"") {
		t.Errorf("a read-only user is shown action forms:\n%s", rp.body)
	}
	// The search form gives the reader a valid token of their own session.
	readerToken := csrf(t, reader.get(f.srv.URL+"/console/search"))
	if p := reader.post(suspend, url.Values{"reason": {"forged"}, "csrf_token": {readerToken}}); p.status != http.StatusForbidden {
		t.Errorf("read-only user's forged POST: %d", p.status)
	}
	if p := alice.post(suspend, url.Values{"reason": {""}, "csrf_token": {token}}); !strings.Contains(p.body, "Give a reason") {
		t.Errorf("no reason: %d\n%s", p.status, p.body)
	}
	if got := f.status(id); got != "active" {
		t.Fatalf("licence %s after refused forms", got)
	}
	ins := f.activate("KEY-BOB-0002", "bob.example").InstallationID
	bobID := f.activate("KEY-BOB-0002", "bob.example").License.ID
	bp := alice.get(f.srv.URL + "/console/licenses/" + bobID)
	if p := alice.post(f.srv.URL+"/console/installations/"+ins+"/deactivate", url.Values{"license": {bobID}, "csrf_token": {csrf(t, bp)}}); !strings.Contains(p.url, "/console/licenses/"+bobID) || !strings.Contains(p.body, "Give a reason") {
		t.Errorf("a deactivation without a reason: back at %s\n%s", p.url, p.body)
	}
	if p := alice.get(f.srv.URL + "/console/deliveries?after=not-a-cursor"); p.status != http.StatusBadRequest {
		t.Errorf("a cursor no page issued: %d", p.status)
	}
	if p := alice.post(suspend, url.Values{"reason": {"chargeback"}, "csrf_token": {token}}); p.status != http.StatusOK || !strings.Contains(p.body, "Licence suspended.") {
		t.Fatalf("suspend: %d %s\n%s", p.status, p.url, p.body)
	}
	if got := f.status(id); got != "suspended" {
		t.Errorf("licence %s after alice suspended it", got)
	}
	evs, _, err := f.svc.Audit(context.Background(), store.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Action != store.AuditLicenseSuspended || last.Actor != "admin:alice" || last.Reason != "chargeback" {
		t.Errorf("audit: %+v", last)
	}
}

// rect is a bar of a chart as drawn.
var rect = regexp.MustCompile(`<rect class="bar" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" data-label="([^"]+)" data-value="(\d+)"`)

// TestConsoleChart: activations on three days are drawn as three bars of
// heights in proportion, the tallest the plot's height, from the per-day
// counters, on both stores.
func TestConsoleChart(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t))
			ctx := context.Background()
			keys := []string{"KEY-ALICE-0001", "KEY-BOB-0002"}
			perDay := []int{2, 1, 4} // distinct domains: each a new installation
			n := 0
			for day, count := range perDay {
				if day > 0 {
					f.clock.Advance(24 * time.Hour)
				}
				for range count {
					f.activate(keys[n%2], "site"+strconv.Itoa(n)+".example")
					n++
				}
				if err := f.svc.FlushDaily(ctx); err != nil {
					t.Fatal(err)
				}
			}
			p := f.browser("alice").get(f.srv.URL + "/console/")
			if p.status != http.StatusOK {
				t.Fatalf("overview: %d\n%s", p.status, p.body)
			}
			chart := p.body[strings.Index(p.body, "Activations per day"):]
			chart = chart[:strings.Index(chart, "</figure>")]
			bars := rect.FindAllStringSubmatch(chart, -1)
			if len(bars) != gateway.OverviewDays {
				t.Fatalf("%d bars, want %d", len(bars), gateway.OverviewDays)
			}
			last := bars[len(bars)-3:]
			for i, want := range perDay {
				h, _ := strconv.ParseFloat(last[i][1], 64)
				if v, _ := strconv.Atoi(last[i][3]); v != want {
					t.Errorf("day %d: value %d, want %d", i, v, want)
				}
				if wantH := 150.0 * float64(want) / 4; h < wantH-0.01 || h > wantH+0.01 {
					t.Errorf("day %d (%s): height %v, want %v", i, last[i][2], h, wantH)
				}
			}
			for _, b := range bars[:len(bars)-3] {
				if b[1] != "0" {
					t.Errorf("a day without activations drawn %s high", b[1])
				}
			}
		})
	}
}

// TestConsoleQueue: a licence the recheck flagged is in the queue with
// the answer that flagged it; dismissing the flag (with a reason) takes it
// out, audited as the console user; on both stores.
func TestConsoleQueue(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, open(t))
			ctx := context.Background()
			id := f.activate("KEY-ALICE-0001", "alice.example").License.ID
			f.activate("KEY-BOB-0002", "bob.example")
			f.writeKeys(map[string]string{"KEY-ALICE-0001": "revoked"})
			if _, err := f.svc.RecheckLicense(ctx, id); err != nil {
				t.Fatal(err)
			}
			if got := f.status(id); got != "flagged" {
				t.Fatalf("after the recheck: %s, want flagged", got)
			}
			alice := f.browser("alice")
			home := alice.get(f.srv.URL + "/console/")
			if !strings.Contains(home.body, "Flagged</a>: <strong>1</strong>") {
				t.Errorf("the overview does not count one flagged licence:\n%s", home.body)
			}
			q := alice.get(f.srv.URL + "/console/queue")
			for _, want := range []string{id, "invalid (revoked)", "/console/licenses/" + id + "/dismiss"} {
				if !strings.Contains(q.body, want) {
					t.Errorf("the queue lacks %q:\n%s", want, q.body)
				}
			}
			if strings.Contains(q.body, "bob") {
				t.Errorf("the queue lists bob's licence, which is not flagged")
			}
			p := alice.post(f.srv.URL+"/console/licenses/"+id+"/dismiss", url.Values{"reason": {"receipt seen"}, "csrf_token": {csrf(t, q)}})
			if p.status != http.StatusOK || !strings.Contains(p.body, "Flag dismissed") {
				t.Fatalf("dismiss: %d\n%s", p.status, p.body)
			}
			if !strings.Contains(p.body, "admin:alice") || !strings.Contains(p.body, "receipt seen") || !strings.Contains(p.body, "license.flagged") {
				t.Errorf("the licence's timeline lacks the flag or the dismissal:\n%s", p.body)
			}
			if got := f.status(id); got != "active" {
				t.Errorf("after dismissing: %s", got)
			}
			if q := alice.get(f.srv.URL + "/console/queue"); !strings.Contains(q.body, "Nothing waits here.") {
				t.Errorf("the queue still lists the licence:\n%s", q.body)
			}
		})
	}
}

// TestConsoleDeliveriesVersionsSearch: a failed delivery is listed and
// retried; installed versions are counted per product; a search by key
// finds the licence without showing the key back.
func TestConsoleDeliveriesVersionsSearch(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	ctx := context.Background()
	a := f.activate("KEY-ALICE-0001", "alice.com")
	// The delivery worker gives up on the activation's event.
	claimed, err := f.store.ClaimOutbox(ctx, f.clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) == 0 {
		t.Fatalf("claiming: %v, %d", err, len(claimed))
	}
	e := claimed[0]
	e.Status, e.LastError, e.Attempts, e.DoneAt = store.OutboxFailed, "endpoint answered 500", 8, f.clock.Now()
	if err := f.store.SettleOutbox(ctx, e); err != nil {
		t.Fatal(err)
	}
	alice := f.browser("alice")
	if o := alice.get(f.srv.URL + "/console/"); !strings.Contains(o.body, `Failed: <a href="/console/deliveries">1</a>`) {
		t.Errorf("the overview does not count the failed delivery:\n%s", o.body)
	}
	d := alice.get(f.srv.URL + "/console/deliveries")
	if !strings.Contains(d.body, "installation.created") || !strings.Contains(d.body, "endpoint answered 500") {
		t.Fatalf("deliveries page:\n%s", d.body)
	}
	p := alice.post(f.srv.URL+"/console/deliveries/"+url.PathEscape(e.ID)+"/retry", url.Values{"csrf_token": {csrf(t, d)}})
	if !strings.Contains(p.body, "Delivery queued again.") || strings.Contains(p.body, "endpoint answered 500") {
		t.Errorf("after retry:\n%s", p.body)
	}
	if pend := alice.get(f.srv.URL + "/console/deliveries?status=pending"); !strings.Contains(pend.body, "installation.created") {
		t.Errorf("the retried delivery is not pending:\n%s", pend.body)
	}

	// Versions: the gate records what installations report.
	g := f.svc.Gate(nil)
	if _, err := g.AdmitVersion(ctx, a.AccessToken, "2.4.1", 0); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.FlushLastSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if v := alice.get(f.srv.URL + "/console/versions"); !strings.Contains(v.body, "<tr><td><code>2.4.1</code></td><td>1</td></tr>") {
		t.Errorf("versions page:\n%s", v.body)
	}

	// Search by key: found, never echoed.
	s := alice.get(f.srv.URL + "/console/search")
	r := alice.post(f.srv.URL+"/console/search", url.Values{"by": {"key"}, "q": {"KEY-ALICE-0001"}, "csrf_token": {csrf(t, s)}})
	if !strings.Contains(r.body, a.License.ID) || strings.Contains(r.body, "KEY-ALICE-0001") {
		t.Errorf("search by key:\n%s", r.body)
	}
	if r := alice.post(f.srv.URL+"/console/search", url.Values{"by": {"domain"}, "q": {"alice.com"}}); r.status != http.StatusForbidden {
		t.Errorf("a search without its token: %d", r.status)
	}
	if r := alice.post(f.srv.URL+"/console/search", url.Values{"by": {"domain"}, "q": {"alice.com"}, "csrf_token": {csrf(t, s)}}); !strings.Contains(r.body, a.License.ID) {
		t.Errorf("search by domain:\n%s", r.body)
	}
	if r := alice.post(f.srv.URL+"/console/search", url.Values{"by": {"everything"}, "q": {"alice.com"}, "csrf_token": {csrf(t, s)}}); r.status != http.StatusBadRequest {
		t.Errorf("a search of an unknown kind: %d", r.status)
	}
}

// TestConsoleStaleDecision: a decision made on a page shown before
// another author's decision changes nothing: a stale "dismiss flag" does
// not re-activate a licence just suspended. Enter in a reason field pulls
// no lever (the form's default button is disabled).
func TestConsoleStaleDecision(t *testing.T) {
	f := newFixture(t, stores(t)["embedded"](t))
	ctx := context.Background()
	id := f.activate("KEY-ALICE-0001", "alice.example").License.ID
	f.writeKeys(map[string]string{"KEY-ALICE-0001": "revoked"})
	if _, err := f.svc.RecheckLicense(ctx, id); err != nil {
		t.Fatal(err)
	}
	alice, carol := f.browser("alice"), f.browser("carol")
	q := alice.get(f.srv.URL + "/console/queue")
	if !strings.Contains(q.body, `<button type="submit" disabled hidden aria-hidden="true" tabindex="-1"></button>`) {
		t.Errorf("the levers' form has no disabled default button:\n%s", q.body)
	}
	lp := carol.get(f.srv.URL + "/console/licenses/" + id)
	if p := carol.post(f.srv.URL+"/console/licenses/"+id+"/suspend", url.Values{"reason": {"fraud confirmed"}, "status": {"flagged"}, "csrf_token": {csrf(t, lp)}}); !strings.Contains(p.body, "Licence suspended.") {
		t.Fatalf("carol's suspension:\n%s", p.body)
	}
	p := alice.post(f.srv.URL+"/console/licenses/"+id+"/dismiss", url.Values{"reason": {"looked fine"}, "status": {"flagged"}, "csrf_token": {csrf(t, q)}})
	if !strings.Contains(p.body, "it is now suspended. Nothing was changed") {
		t.Errorf("a stale dismissal:\n%s", p.body)
	}
	if got := f.status(id); got != "suspended" {
		t.Errorf("after a stale dismissal: %s, want suspended", got)
	}
	// A stale reinstate of a licence carol reinstated and suspended again
	// is refused too only when the status differs: the same status is the
	// same decision.
	if p := alice.post(f.srv.URL+"/console/licenses/"+id+"/reinstate", url.Values{"reason": {"ok"}, "status": {"active"}, "csrf_token": {csrf(t, q)}}); !strings.Contains(p.body, "Nothing was changed") {
		t.Errorf("a reinstate from a page that showed it active:\n%s", p.body)
	}
	if got := f.status(id); got != "suspended" {
		t.Errorf("after a stale reinstate: %s", got)
	}
	// Recheck now: audited as alice's ask, with her reason.
	p = alice.post(f.srv.URL+"/console/licenses/"+id+"/recheck", url.Values{"reason": {"buyer says renewed"}, "csrf_token": {csrf(t, q)}})
	if !strings.Contains(p.body, "Rechecked: invalid") {
		t.Errorf("recheck now:\n%s", p.body)
	}
	evs, _, err := f.svc.Audit(ctx, store.AuditQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var asked bool
	for _, ev := range evs {
		asked = asked || ev.Action == store.AuditRecheckRequested && ev.Actor == "admin:alice" && ev.Reason == "buyer says renewed"
	}
	if !asked {
		t.Errorf("no license.recheck_requested by admin:alice in %+v", evs)
	}
}

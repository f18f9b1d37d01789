package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	redisstore "github.com/licensegate/licensegate/store/redis"
	"github.com/licensegate/licensegate/webhooks"
)

// testSecret is a whsec_ secret; its key is the base64 after the prefix.
const testSecret = "whsec_" + "c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cy0zMmI="

// verify is an independent Standard Webhooks 1.0 check (not package
// webhooks'): HMAC-SHA256 over "id.timestamp.body" with the base64 key
// after whsec_, compared with each "v1,<base64>" of the signature header,
// the timestamp within 5 minutes of now.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s off by %s", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", h.Get("webhook-signature"))
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// receiver is a webhook endpoint on a fixed address that can be down
// (connection refused), failing (500), throttling (429 Retry-After) or up.
type receiver struct {
	t     *testing.T
	clock *clock
	addr  string

	mu       sync.Mutex
	mode     string // up, 500, 429
	srv      *http.Server
	got      []delivery
	attempts int
}

type delivery struct {
	id   string
	body webhooks.Body
	raw  []byte
}

func newReceiver(t *testing.T, c *clock) *receiver {
	r := &receiver{t: t, clock: c, mode: "up"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() { r.down() })
	return r
}

func (r *receiver) URL() string { return "http://" + r.addr + "/hook" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener: connections are refused.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (r *receiver) up(mode string) {
	r.mu.Lock()
	r.mode = mode
	running := r.srv != nil
	r.mu.Unlock()
	if running {
		return
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	switch r.mode {
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
		return
	case "429":
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if err := verify(testSecret, req.Header, body, r.clock.Now()); err != nil {
		r.t.Errorf("signature check: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b webhooks.Body
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	r.got = append(r.got, delivery{id: req.Header.Get("webhook-id"), body: b, raw: body})
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func endpoint(t *testing.T, url string) webhooks.Endpoint {
	sec, err := webhooks.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return webhooks.Endpoint{URL: url, Secrets: []webhooks.Secret{sec}, Client: webhooks.NewClient(2 * time.Second)}
}

func openEmbedded(t *testing.T) store.Store {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func redisStore(t *testing.T, addr, prefix string) store.Store {
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	s := redisstore.New(c, redisstore.Options{KeyPrefix: prefix})
	t.Cleanup(func() { s.Close() })
	return s
}

// change writes one state change of lic with its event, numbered n.
func change(t *testing.T, s store.Store, lic string, n int, at time.Time) {
	t.Helper()
	_, err := s.UpdateLicense(context.Background(), lic, func(st *store.LicenseState) (*store.LicenseState, error) {
		if st.License == nil {
			st.License = &store.License{ID: lic, Status: store.LicenseActive, CreatedAt: at}
		}
		st.License.UpdatedAt = at
		action := store.AuditLicenseSuspended
		if n%2 == 1 {
			action = store.AuditLicenseReinstated
		}
		st.Events = append(st.Events, store.AuditEvent{At: at, Actor: "admin", Action: action, LicenseID: lic, Reason: "n=" + strconv.Itoa(n)})
		return st, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// drain runs rounds at the clock's time until none claims anything.
func drain(t *testing.T, w *webhooks.Worker) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		n, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("rounds never ended")
}

func backends(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"embedded": openEmbedded,
		"redis": func(t *testing.T) store.Store {
			return redisStore(t, redistest.StartServer(t), "lg:")
		},
	}
}

// Acceptance 2: the receiver is down (refused, then 500s, then 429 with
// Retry-After) for 10 simulated hours while 1,000 changes happen; after it
// recovers every event arrives, duplicates share their webhook-id, and each
// licence's events arrive in order.
func TestOutageLosesNothing(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
			r := newReceiver(t, c)
			w := webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{endpoint(t, r.URL())}, Now: c.Now, Jitter: func() float64 { return 0.5 }})
			r.down()
			const changes, licences = 1000, 40
			start := c.Now()
			n := 0
			for step := 0; c.Now().Sub(start) < 10*time.Hour; step++ {
				switch elapsed := c.Now().Sub(start); {
				case elapsed >= 7*time.Hour:
					r.up("429")
				case elapsed >= 3*time.Hour:
					r.up("500")
				}
				for i := 0; i < 9 && n < changes; i++ { // 1,000 changes over the first ~9h
					change(t, s, fmt.Sprintf("lic_%02d", n%licences), n, c.Now())
					n++
				}
				drain(t, w)
				c.Add(5 * time.Minute)
			}
			if n != changes {
				t.Fatalf("made %d changes", n)
			}
			r.up("up")
			for c.Now().Sub(start) < 48*time.Hour {
				drain(t, w)
				c.Add(5 * time.Minute)
			}
			got := r.deliveries()
			seen := map[string]string{} // reason -> webhook-id
			last := map[string]int{}    // licence -> last n delivered first
			for _, d := range got {
				scanBody(t, d.raw)
				reason := d.body.Data.Reason
				if id, ok := seen[reason]; ok {
					if id != d.id {
						t.Errorf("duplicate of %s with another webhook-id: %s, %s", reason, id, d.id)
					}
					continue
				}
				seen[reason] = d.id
				k, _ := strconv.Atoi(strings.TrimPrefix(reason, "n="))
				lic := d.body.Data.LicenseID
				if prev, ok := last[lic]; ok && k < prev {
					t.Errorf("licence %s: event %d arrived after %d", lic, k, prev)
				}
				last[lic] = k
			}
			if len(seen) != changes {
				t.Fatalf("%d distinct events arrived, want %d (%d deliveries)", len(seen), changes, len(got))
			}
			failed, _, err := s.OutboxEntries(context.Background(), store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
			if err != nil || len(failed) != 0 {
				t.Fatalf("failed entries: %v %v", failed, err)
			}
			t.Logf("%d events, %d deliveries, %d attempts at the receiver", changes, len(got), r.attempts)
		})
	}
}

// Acceptance 4: two workers on one Redis deliver each event once.
func TestTwoWorkersOneRedis(t *testing.T) {
	addr := redistest.StartServer(t)
	a, b := redisStore(t, addr, "lg:"), redisStore(t, addr, "lg:")
	c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	r := newReceiver(t, c)
	for n := 0; n < 1000; n++ {
		change(t, a, fmt.Sprintf("lic_%03d", n%100), n, c.Now())
	}
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b} {
		w := webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{endpoint(t, r.URL())}, Now: c.Now})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idle := 0; idle < 3; {
				n, err := w.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					idle++
				} else {
					idle = 0
				}
			}
		}()
	}
	wg.Wait()
	drain(t, webhooks.NewWorker(webhooks.Config{Outbox: a, Endpoints: []webhooks.Endpoint{endpoint(t, r.URL())}, Now: c.Now}))
	count := map[string]int{}
	for _, d := range r.deliveries() {
		count[d.id]++
	}
	if len(count) != 1000 {
		t.Fatalf("%d distinct events, want 1000", len(count))
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// Each endpoint gets its own delivery, only of the events it wants, and a
// Caddy-event hook sees every event once.
func TestEndpointsAndEmit(t *testing.T) {
	s := openEmbedded(t)
	c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	all, some := newReceiver(t, c), newReceiver(t, c)
	epSome := endpoint(t, some.URL())
	epSome.Events = []string{store.AuditLicenseSuspended}
	var mu sync.Mutex
	emitted := map[string]int{}
	w := webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{endpoint(t, all.URL()), epSome}, Now: c.Now,
		Emit: func(_ context.Context, typ string, b webhooks.Body) {
			mu.Lock()
			emitted[typ+" "+b.Data.LicenseID]++
			mu.Unlock()
		}})
	some.down()
	change(t, s, "lic_1", 0, c.Now()) // suspended
	change(t, s, "lic_2", 1, c.Now()) // reinstated
	drain(t, w)
	some.up("up")
	c.Add(time.Minute)
	drain(t, w)
	if n := len(all.deliveries()); n != 2 {
		t.Errorf("the endpoint for all events got %d, want 2", n)
	}
	if got := some.deliveries(); len(got) != 1 || got[0].body.Type != store.AuditLicenseSuspended {
		t.Errorf("the endpoint for suspensions got %+v", got)
	}
	if emitted[store.AuditLicenseSuspended+" lic_1"] != 1 || emitted[store.AuditLicenseReinstated+" lic_2"] != 1 || len(emitted) != 2 {
		t.Errorf("emitted %v", emitted)
	}
}

// scanBody fails when a body holds anything secret-shaped: a purchase code
// format, a token, a webhook secret.
func scanBody(t *testing.T, raw []byte) {
	t.Helper()
	s := string(raw)
	for _, bad := range []string{"whsec_", "rt_", "eyJ", "key_ciphertext", "license_key", "client_ip"} {
		if strings.Contains(s, bad) {
			t.Errorf("webhook body holds %q: %s", bad, s)
		}
	}
}

// Every event type of SPEC section 10 is delivered once, signed, with the
// documented body, on both stores.
func TestEveryEventTypeDelivered(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
			r := newReceiver(t, c)
			ctx := context.Background()
			put := func(ev store.AuditEvent) {
				t.Helper()
				if ev.LicenseID == "" {
					if err := s.AppendEvents(ctx, []store.AuditEvent{ev}); err != nil {
						t.Fatal(err)
					}
					return
				}
				_, err := s.UpdateLicense(ctx, ev.LicenseID, func(st *store.LicenseState) (*store.LicenseState, error) {
					if st.License == nil {
						st.License = &store.License{ID: ev.LicenseID, Status: store.LicenseActive}
					}
					st.Events = append(st.Events, ev)
					return st, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, typ := range store.AuditActions {
				ev := store.AuditEvent{At: c.Now(), Actor: "gateway", Action: typ, LicenseID: "lic_1", InstallationID: "ins_1", Product: "p", Source: "envato"}
				switch typ {
				case store.AuditKeysRotated, store.AuditRecheckGuardTripped, store.AuditSourceCredentialFailing:
					ev.LicenseID, ev.InstallationID = "", ""
				}
				put(ev)
			}
			drain(t, webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{endpoint(t, r.URL())}, Now: c.Now}))
			got := map[string]int{}
			for _, d := range r.deliveries() {
				scanBody(t, d.raw)
				got[d.body.Type]++
				var top map[string]json.RawMessage
				_ = json.Unmarshal(d.raw, &top)
				if len(top) != 3 || top["type"] == nil || top["timestamp"] == nil || top["data"] == nil || !d.body.Timestamp.Equal(c.Now()) {
					t.Errorf("body %s: want exactly type, timestamp, data", d.raw)
				}
				if d.body.Data.Product != "p" {
					t.Errorf("body %s lacks its facts", d.raw)
				}
			}
			for _, typ := range store.AuditActions {
				if got[typ] != 1 {
					t.Errorf("%s delivered %d times", typ, got[typ])
				}
			}
			if len(got) != len(store.AuditActions) {
				t.Errorf("types delivered: %v", got)
			}
		})
	}
}

// A worker that dies mid-round (its claims never settled) and a restart
// on the same file: every one of 500 pending events is delivered by the
// next worker once the dead one's lease has run out.
func TestRestartAfterCrashDeliversAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lg.db")
	s, err := embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	for n := 0; n < 500; n++ {
		change(t, s, fmt.Sprintf("lic_%03d", n%50), n, c.Now())
	}
	claimed, err := s.ClaimOutbox(context.Background(), c.Now(), webhooks.DefaultLease, 40)
	if err != nil || len(claimed) != 40 {
		t.Fatalf("the dying worker claimed %d: %v", len(claimed), err)
	}
	s.Close() // the process dies: its claims stay in the file
	s, err = embedded.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newReceiver(t, c)
	w := webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{endpoint(t, r.URL())}, Now: c.Now})
	drain(t, w)
	// The 40 licences whose head the dead worker holds wait for its lease;
	// the other 10 licences' 100 events go at once.
	if n := len(r.deliveries()); n != 100 {
		t.Fatalf("delivered %d before the dead worker's lease ran out, want 100", n)
	}
	c.Add(webhooks.DefaultLease + time.Second)
	drain(t, w)
	seen := map[string]bool{}
	for _, d := range r.deliveries() {
		seen[d.body.Data.Reason] = true
	}
	if len(seen) != 500 {
		t.Fatalf("%d distinct events delivered after the restart, want 500", len(seen))
	}
}

// An event that failed for good and is retried by the admin is delivered
// once more, but emitted as a Caddy event only the first time; the stored
// progress names each endpoint by its id, never its URL (a URL may carry
// a token).
func TestRetryEmitsOnceAndTargetsHideTheURL(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
			r := newReceiver(t, c)
			ep := endpoint(t, r.URL()+"?token=s3cret-in-the-url")
			emitted := 0
			w := webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{ep}, Now: c.Now,
				Emit: func(context.Context, string, webhooks.Body) { emitted++ }})
			r.down()
			change(t, s, "lic_1", 0, c.Now())
			for range 10 * 24 * 12 { // ten days of 5-minute rounds: past the whole schedule
				drain(t, w)
				c.Add(5 * time.Minute)
			}
			failed, _, err := s.OutboxEntries(context.Background(), store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
			if err != nil || len(failed) != 1 {
				t.Fatalf("failed entries %+v, %v; want the one event", failed, err)
			}
			e := failed[0]
			if st := e.Targets[ep.TargetID()]; st != store.OutboxFailed || len(e.Targets) != 1 {
				t.Errorf("targets %v, want %s failed", e.Targets, ep.TargetID())
			}
			for id := range e.Targets {
				if strings.Contains(id, "s3cret") || strings.Contains(id, r.addr) {
					t.Errorf("a target is named by the endpoint's URL: %q", id)
				}
			}
			r.up("up")
			if err := s.RetryOutbox(context.Background(), e.ID, c.Now()); err != nil {
				t.Fatal(err)
			}
			drain(t, w)
			if n := len(r.deliveries()); n != 1 {
				t.Errorf("%d deliveries after the retry, want 1", n)
			}
			if emitted != 1 {
				t.Errorf("emitted %d times as a Caddy event, want once", emitted)
			}
		})
	}
}

// An entry written before target ids, its progress keyed by the URL, is
// not sent again to an endpoint that has it, every URL key (also one of an
// endpoint no longer configured) is moved to its id, and an entry written
// before Emitted that has had a round (an admin retry zeroed its attempts)
// is not emitted again.
func TestTargetsKeyedByURLStillCount(t *testing.T) {
	s := openEmbedded(t)
	c := &clock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	had, waiting := newReceiver(t, c), newReceiver(t, c)
	epHad, epWaiting := endpoint(t, had.URL()), endpoint(t, waiting.URL())
	change(t, s, "lic_1", 0, c.Now())
	es, err := s.ClaimOutbox(context.Background(), c.Now(), time.Minute, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("ClaimOutbox: %+v, %v", es, err)
	}
	e := es[0]
	e.Attempts, e.NextAttemptAt = 0, c.Now()
	e.Targets = map[string]string{epHad.URL: store.OutboxDelivered, epWaiting.URL: store.OutboxPending, "http://gone.example/hook?t=1": store.OutboxDelivered}
	if err := s.SettleOutbox(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	emitted := 0
	drain(t, webhooks.NewWorker(webhooks.Config{Outbox: s, Endpoints: []webhooks.Endpoint{epHad, epWaiting}, Now: c.Now,
		Emit: func(context.Context, string, webhooks.Body) { emitted++ }}))
	if emitted != 0 {
		t.Errorf("an entry that had a round was emitted %d times", emitted)
	}
	if n := len(had.deliveries()); n != 0 {
		t.Errorf("the endpoint that had the event got it %d more times", n)
	}
	if n := len(waiting.deliveries()); n != 1 {
		t.Errorf("the waiting endpoint got %d deliveries, want 1", n)
	}
	all, _, _ := s.OutboxEntries(context.Background(), store.OutboxQuery{Limit: 10})
	for k := range all[0].Targets {
		if !strings.HasPrefix(k, "ep_") {
			t.Errorf("target %q kept its URL", k)
		}
	}
	if len(all) != 1 || all[0].Status != store.OutboxDelivered || len(all[0].Targets) != 3 ||
		all[0].Targets[epHad.TargetID()] != store.OutboxDelivered || all[0].Targets[epWaiting.TargetID()] != store.OutboxDelivered {
		t.Errorf("entry after delivery %+v, want both targets delivered under their ids", all)
	}
}

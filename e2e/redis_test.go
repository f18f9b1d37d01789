package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
)

// redisTemplate is a gateway on a shared Redis.
const redisTemplate = `{
	admin 127.0.0.1:{{ADMIN}}
	licensegate {
		storage redis {
			address redis://{{REDIS}}/0
			{{REDIS_AUTH}}
			timeout 500ms
			dial_timeout 500ms
		}
		secret {env.LG_E2E_SECRET}
		issuer https://gateway.test
		status_cache_ttl {{CACHE_TTL}}
		source static {
			file {{DIR}}/keys.csv
		}
		{{SOURCES}}
		product converter-pro {
			sources static
			activations {{ACTIVATIONS}}
			{{PRODUCT_OPTIONS}}
		}
		product other-product {
			sources static
		}
	}
}

http://127.0.0.1:{{PORT}} {
	handle /v1/licenses/* {
		license_exchange {
			rate_limit 100000/m
			failed_limit 100000/m
		}
	}
	handle /whoami {
		license_gate converter-pro other-product {
			on_store_error allow_stale {{STALE}}
		}
		respond "{license.id} {license.class} {license.stale}"
	}
	handle /convert* {
		license_gate converter-pro {
			on_store_error allow_stale {{STALE}}
		}
		reverse_proxy {{UPSTREAM}}
	}
}
`

// startOnRedis starts a gateway sharing the Redis at addr.
func startOnRedis(t *testing.T, addr string, vars map[string]string) *gateway {
	t.Helper()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = redisTemplate
	g.vars["REDIS"] = addr
	g.vars["REDIS_AUTH"] = ""
	g.vars["CACHE_TTL"] = "30s"
	g.vars["STALE"] = "10m"
	for k, v := range vars {
		g.vars[k] = v
	}
	g.start()
	return g
}

func TestTwoGatewaysShareOneRedis(t *testing.T) {
	srv := redistest.NewServer(t)
	a := startOnRedis(t, srv.Addr(), nil)
	b := startOnRedis(t, srv.Addr(), nil)

	act := a.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, act, http.StatusCreated, "")
	token := act.str("access_token")
	expectStatus(t, b.call(token), http.StatusOK, "") // minted by A, admitted by B
	again := b.activate("KEY-AAAA-0001", "acme.com")  // a re-activation: the earlier token is superseded
	expectStatus(t, again, http.StatusOK, "")
	waitFor(t, time.Second, "A refuses the token B superseded", func() bool { return a.call(token).str("code") == "token_revoked" })
	token = again.str("access_token")

	// A deactivation on A is enforced by B's gate within a second.
	start := time.Now()
	r := do(t, http.MethodPost, a.url("/v1/licenses/deactivate"), nil, "Authorization", "Bearer "+token)
	if r.status != http.StatusNoContent {
		t.Fatalf("deactivate: %d %s", r.status, r.body)
	}
	took := waitFor(t, time.Second, "B refuses a token deactivated on A", func() bool { return b.call(token).status == http.StatusForbidden })
	t.Logf("deactivation on A enforced by B's gate %s after the request (%s after the answer)", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))

	// A suspension through A's admin API, likewise.
	act2 := a.activate("KEY-AAAA-0004", "dave.com")
	tok2 := act2.str("access_token")
	expectStatus(t, b.call(tok2), http.StatusOK, "")
	expectAdmin(t, a.adminCall(http.MethodPost, "licenses/"+act2.str("license", "id")+"/suspend", map[string]string{"reason": "test"}), 200)
	took = waitFor(t, time.Second, "B refuses a licence suspended on A", func() bool { return b.call(tok2).status == http.StatusForbidden })
	t.Logf("suspension on A enforced by B's gate after %s", took.Round(time.Millisecond))

	// A key rotated on A is used by B for new tokens, and both keep verifying.
	rot := a.adminCall(http.MethodPost, "keys/rotate", nil)
	expectAdmin(t, rot, 200)
	waitFor(t, 2*time.Second, "B signs with the rotated key", func() bool {
		return kidOf(t, b.activate("KEY-AAAA-0005", "erin.com").str("access_token")) == rot.str("kid")
	})
	expectStatus(t, a.call(b.activate("KEY-AAAA-0005", "erin.com").str("access_token")), http.StatusOK, "")

	// No purchase code, token or secret anywhere in Redis, keys or values.
	assertNoSecretsInRedis(t, srv.Addr(), []string{"KEY-AAAA-0001", "KEY-AAAA-0004", "KEY-AAAA-0005",
		act.str("refresh_token"), token, testSecret})
}

// assertNoSecretsInRedis dumps every key and value (whatever the type) and
// looks for each secret, in any case.
func assertNoSecretsInRedis(t *testing.T, addr string, secrets []string) {
	t.Helper()
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rc.Close()
	var dump strings.Builder
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("KEYS: %d, %v", len(keys), err)
	}
	for _, k := range keys {
		dump.WriteString(k + "\n")
		raw, err := rc.Dump(ctx, k).Result() // every type, serialised
		if errors.Is(err, goredis.Nil) {
			continue // gone since KEYS (a licence's outbox queue, emptied by a delivery): nothing to read
		}
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		dump.WriteString(raw + "\n")
		switch typ := rc.Type(ctx, k).Val(); typ { // DUMP may compress: read plainly too
		case "string":
			dump.WriteString(rc.Get(ctx, k).Val())
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				dump.WriteString(f + "=" + v + "\n")
			}
		case "zset":
			dump.WriteString(strings.Join(rc.ZRange(ctx, k, 0, -1).Val(), "\n"))
		case "stream":
			for _, m := range rc.XRange(ctx, k, "-", "+").Val() {
				dump.WriteString(fmt.Sprint(m.Values) + "\n")
			}
		}
	}
	text := strings.ToLower(dump.String())
	for _, s := range secrets {
		if strings.Contains(text, strings.ToLower(s)) {
			t.Errorf("Redis holds %.12s... in plaintext", s)
		}
	}
	t.Logf("scanned %d Redis keys (%d bytes): no purchase code, token or secret", len(keys), dump.Len())
}

func TestConcurrentActivationsAcrossTwoGateways(t *testing.T) {
	srv := redistest.NewServer(t)
	// 200 distinct domains in a moment is what leak_threshold locks on:
	// raised here, where the slots' exactness is the point.
	vars := map[string]string{"ACTIVATIONS": "3", "PRODUCT_OPTIONS": "leak_threshold 1000/24h"}
	gws := []*gateway{startOnRedis(t, srv.Addr(), vars), startOnRedis(t, srv.Addr(), vars)}
	activateAtOnce(t, 200, 3, func(i int) *gateway { return gws[i%2] })
	lic := gws[0].adminCall(http.MethodPost, "licenses/lookup", map[string]string{"license_key": "KEY-AAAA-0001"})
	if inss, _ := lic.json["installations"].([]any); len(inss) != 3 {
		t.Fatalf("%d installations stored, want 3", len(inss))
	}
}

func TestPubSubCutBoundedByCacheTTL(t *testing.T) {
	srv := redistest.NewServer(t)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	// B's user may use every key but no pub/sub channel: it never hears
	// of changes and must rely on its cache TTL.
	if err := rc.Do(context.Background(), "ACL", "SETUSER", "b", "on", ">b-password", "~*", "resetchannels", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	a := startOnRedis(t, srv.Addr(), map[string]string{"CACHE_TTL": "2s"})
	b := startOnRedis(t, srv.Addr(), map[string]string{"CACHE_TTL": "2s", "REDIS_AUTH": "username b\n\t\t\tpassword b-password"})
	act := a.activate("KEY-AAAA-0001", "acme.com")
	token := act.str("access_token")
	expectStatus(t, b.call(token), http.StatusOK, "")
	start := time.Now()
	r := do(t, http.MethodPost, a.url("/v1/licenses/deactivate"), nil, "Authorization", "Bearer "+token)
	if r.status != http.StatusNoContent {
		t.Fatalf("deactivate: %d %s", r.status, r.body)
	}
	waitFor(t, 3*time.Second, "B refuses within its cache TTL", func() bool { return b.call(token).status == http.StatusForbidden })
	t.Logf("without pub/sub, B refused the deactivated token after %s (cache TTL 2s)", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(b.logs.String(), "subscribing to store changes") {
		t.Error("B did not report its failing subscription")
	}
}

func TestRedisOutageStaleThenRecovery(t *testing.T) {
	srv := redistest.NewDurableServer(t)
	g := startOnRedis(t, srv.Addr(), map[string]string{"CACHE_TTL": "1s", "STALE": "3s", "ACTIVATIONS": "5"})
	act := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, act, http.StatusCreated, "")
	token := act.str("access_token")
	confirmed := time.Now()
	expectStatus(t, g.call(token), http.StatusOK, "")

	srv.Stop()
	stopped := time.Now()
	// Known tokens keep passing on the last-known status for the stale
	// window. The status was fetched at most one TTL (1s) before confirmed,
	// so it is served until at least confirmed+3s; stopping Redis may take
	// a while on a slow machine, so count from confirmed, not stopped.
	for time.Since(confirmed) < 2*time.Second {
		if r := g.call(token); r.status != http.StatusOK {
			t.Fatalf("%s into the outage: %d %s", time.Since(stopped).Round(time.Millisecond), r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ... and say so to later handlers ...
	who := do(t, http.MethodGet, g.url("/whoami"), nil, "Authorization", "Bearer "+token)
	if who.status != http.StatusOK || !strings.HasSuffix(string(who.body), " true") {
		t.Fatalf("{license.stale} during the outage: %d %q", who.status, who.body)
	}
	// ... activations are refused without a wrong answer ...
	r := g.activate("KEY-AAAA-0001", "second.com")
	expectStatus(t, r, http.StatusServiceUnavailable, "store_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("store_unavailable without Retry-After")
	}
	// ... and once TTL+stale has passed, gated requests get 503 too.
	waitFor(t, 5*time.Second, "gate answers 503 after the stale window", func() bool {
		return g.call(token).status == http.StatusServiceUnavailable
	})
	expectStatus(t, g.call(token), http.StatusServiceUnavailable, "store_unavailable")
	t.Logf("gate served the last-known status for %s of outage", time.Since(stopped).Round(100*time.Millisecond))

	if err := srv.Start(); err != nil { // same port, same (append-only) data
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gate recovery", func() bool { return g.call(token).status == http.StatusOK })
	waitFor(t, 10*time.Second, "exchange recovery", func() bool {
		return g.activate("KEY-AAAA-0001", "second.com").status == http.StatusCreated
	})
	// Nothing lost or duplicated: the two installations made, once each.
	again := g.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, again, http.StatusOK, "")
	if again.str("installation_id") != act.str("installation_id") || again.num("license", "activations_used") != 2 {
		t.Fatalf("after recovery: %s", again.body)
	}
}

// TestConcurrentActivationsEmbedded is the same race on the embedded store.
func TestConcurrentActivationsEmbedded(t *testing.T) {
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.vars["ACTIVATIONS"] = "3"
	g.vars["PRODUCT_OPTIONS"] = "leak_threshold 1000/24h"
	g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 100000/m\n\t\t\tfailed_limit 100000/m\n\t\t}"
	g.start()
	activateAtOnce(t, 200, 3, func(int) *gateway { return g })
}

// TestRedisDownAtStart: a gateway started while Redis is down answers 503
// (never "invalid"), and works once Redis is back, without a restart.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.NewDurableServer(t)
	first := startOnRedis(t, srv.Addr(), nil)
	act := first.activate("KEY-AAAA-0001", "acme.com")
	expectStatus(t, act, http.StatusCreated, "")
	token := act.str("access_token")
	first.stop()

	srv.Stop()
	up := httptest.NewServer(&recordingUpstream{})
	t.Cleanup(up.Close)
	g := newGateway(t, strings.TrimPrefix(up.URL, "http://"))
	g.template = redisTemplate
	for k, v := range map[string]string{"REDIS": srv.Addr(), "REDIS_AUTH": "", "CACHE_TTL": "30s", "STALE": "10m"} {
		g.vars[k] = v
	}
	g.startUnready() // its JWKS cannot answer 200 without the store
	expectStatus(t, g.call(token), http.StatusServiceUnavailable, "store_unavailable")
	expectStatus(t, g.activate("KEY-AAAA-0004", "dave.com"), http.StatusServiceUnavailable, "store_unavailable")
	expectStatus(t, do(t, http.MethodGet, g.url("/v1/licenses/jwks.json"), nil), http.StatusServiceUnavailable, "store_unavailable")
	if !strings.Contains(g.logs.String(), "redis is not reachable yet") {
		t.Error("no warning about Redis at start")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gate admits the earlier token once Redis is back", func() bool { return g.call(token).status == http.StatusOK })
	expectStatus(t, g.activate("KEY-AAAA-0004", "dave.com"), http.StatusCreated, "")
}

// activateAtOnce sends n activations of one licence with n distinct domains
// at once, the i-th to via(i), and checks that exactly slots were created
// and every other answer is the slot refusal. A request that queued behind
// this instance's other updates of the licence for longer than the store's
// timeout (500ms in these tests, on a loaded machine) is answered 503
// store_unavailable with Retry-After, as documented: never a wrong answer.
// Such a request is sent again once the burst is over, as an installer
// would, and must then get the refusal too.
func activateAtOnce(t *testing.T, n, slots int, via func(i int) *gateway) {
	t.Helper()
	answers := make([]response, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = via(i).activate("KEY-AAAA-0001", fmt.Sprintf("site-%03d.com", i))
		}()
	}
	wg.Wait()
	counts := map[string]int{}
	var again []int
	for i, r := range answers {
		counts[fmt.Sprintf("%d %s", r.status, r.str("code"))]++
		if r.status == http.StatusServiceUnavailable && r.str("code") == "store_unavailable" && r.header.Get("Retry-After") != "" {
			again = append(again, i)
		}
	}
	t.Logf("answers in %s: %v", time.Since(start).Round(time.Millisecond), counts)
	created, refused := counts["201 "], counts["409 activation_limit_reached"]
	if created != slots || created+refused+len(again) != n {
		t.Fatalf("answers %v, want %d created and the others 409 activation_limit_reached (or 503 store_unavailable with Retry-After)", counts, slots)
	}
	for _, i := range again {
		r := via(i).activate("KEY-AAAA-0001", fmt.Sprintf("site-%03d.com", i))
		expectStatus(t, r, http.StatusConflict, "activation_limit_reached")
	}
}

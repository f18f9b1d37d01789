package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/internal/redistest"
)

// durabilityKeys is how many distinct static keys the activation load may
// spend: more than a couple of seconds of it on a loaded CI machine.
const durabilityKeys = 20000

// writeDurabilityKeys replaces the gateway's keys file with n distinct
// one-slot keys, DUR-00000...
func writeDurabilityKeys(t *testing.T, g *gateway) {
	t.Helper()
	var b strings.Builder
	b.WriteString("key,product,type,licensed_to,expires_at,support_until,activations,status\n")
	for i := range durabilityKeys {
		fmt.Fprintf(&b, "DUR-%05d,converter-pro,regular,Load,,2099-01-01T00:00:00Z,,active\n", i)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "keys.csv"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// activationLoad posts activations of distinct keys from 16 clients until
// stop is closed, and hands back the installation ids answered 201.
type activationLoad struct {
	created []string
	other   map[int]int // non-201 answers by status (0: no answer)
	wg      sync.WaitGroup
	mu      sync.Mutex
	stop    chan struct{}
}

func startActivationLoad(t *testing.T, g *gateway) *activationLoad {
	t.Helper()
	l := &activationLoad{other: map[int]int{}, stop: make(chan struct{})}
	var next atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := next.Add(1) - 1
				if n >= durabilityKeys {
					return
				}
				form := url.Values{"license_key": {fmt.Sprintf("DUR-%05d", n)}, "domain": {"acme.com"}}
				status, id := 0, ""
				resp, err := client.PostForm(g.url("/v1/licenses/activate"), form)
				if err == nil {
					r := response{status: resp.StatusCode}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					_ = json.Unmarshal(raw, &r.json)
					status, id = r.status, r.str("installation_id")
				} else {
					time.Sleep(5 * time.Millisecond) // the gateway is down: do not spin
				}
				l.mu.Lock()
				if status == http.StatusCreated && id != "" {
					l.created = append(l.created, id)
				} else {
					l.other[status]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *activationLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.created)
}

// awaitCreated waits until at least n activations were answered 201.
func (l *activationLoad) awaitCreated(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if l.count() >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d activations answered 201 in 30s", n)
}

func (l *activationLoad) finish() ([]string, map[int]int) {
	close(l.stop)
	l.wg.Wait()
	return l.created, l.other
}

// kill9 kills the gateway's process outright, as a crash would: no
// shutdown, no deferred work.
func (g *gateway) kill9() {
	g.t.Helper()
	if err := g.cmd.Process.Kill(); err != nil {
		g.t.Fatal(err)
	}
	<-g.exited
	g.cmd = nil
}

// assertAllStored checks every installation id answered 201 against the
// admin API of the (restarted) gateway.
func assertAllStored(t *testing.T, g *gateway, created []string, other map[int]int) {
	t.Helper()
	t.Logf("%d activations answered 201; other answers by status (0: none, the process was killed): %v", len(created), other)
	missing := 0
	for _, id := range created {
		r := g.adminCall(http.MethodGet, "installations/"+id, nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"active"`) {
			missing++
			if missing <= 5 {
				t.Errorf("installation %s answered 201 but after the restart: %d %s", id, r.status, r.body)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d installations answered 201 are not in the store", missing, len(created))
	}
}

// TestKill9DuringActivations is "no installation lost by kill -9 at any
// point of an activation" (SPEC section 11): under a load of activations
// of distinct keys the gateway is killed with SIGKILL; after a restart
// every installation it answered 201 for is in the store. On Redis (AOF,
// appendfsync everysec) the Redis server is killed the same way too: a
// reply goes out only after its write reached the AOF file in the kernel,
// so a killed process loses nothing; only a crash of the machine itself
// can lose up to about a second of writes with everysec (appendfsync
// always closes that too, at a cost in throughput).
func TestKill9DuringActivations(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		g := newGateway(t, "127.0.0.1:1")
		g.vars["EXCHANGE"] = "{\n\t\t\trate_limit 100000000/m\n\t\t\tfailed_limit 100000000/m\n\t\t}"
		writeDurabilityKeys(t, g)
		g.start()
		killGatewayMidLoad(t, g)
	})
	t.Run("redis gateway killed", func(t *testing.T) {
		srv := redistest.NewServerArgs(t, "--appendonly", "yes", "--appendfsync", "everysec")
		g := newRedisGatewayForLoad(t, srv.Addr())
		killGatewayMidLoad(t, g)
	})
	t.Run("redis server killed", func(t *testing.T) {
		srv := redistest.NewServerArgs(t, "--appendonly", "yes", "--appendfsync", "everysec")
		g := newRedisGatewayForLoad(t, srv.Addr())
		load := startActivationLoad(t, g)
		load.awaitCreated(t, 200)
		before := load.count()
		srv.Stop() // SIGKILL
		time.Sleep(100 * time.Millisecond)
		if err := srv.Start(); err != nil { // replays the AOF
			t.Fatal(err)
		}
		load.awaitCreated(t, before+100) // the gateway reconnected
		created, other := load.finish()
		assertAllStored(t, g, created, other)
	})
}

// killGatewayMidLoad kill -9s g once 200 activations were answered 201,
// restarts it, and finds every one of them stored.
func killGatewayMidLoad(t *testing.T, g *gateway) {
	t.Helper()
	load := startActivationLoad(t, g)
	load.awaitCreated(t, 200)
	g.kill9()
	created, other := load.finish()
	g.start()
	assertAllStored(t, g, created, other)
}

// newRedisGatewayForLoad starts a gateway on the Redis at addr with the
// durability keys.
func newRedisGatewayForLoad(t *testing.T, addr string) *gateway {
	t.Helper()
	g := newGateway(t, "127.0.0.1:1")
	g.template = redisTemplate
	for k, v := range map[string]string{"REDIS": addr, "REDIS_AUTH": "", "CACHE_TTL": "30s", "STALE": "10m"} {
		g.vars[k] = v
	}
	writeDurabilityKeys(t, g)
	g.start()
	return g
}

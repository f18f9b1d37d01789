// Package redistest starts real redis-server processes for tests: a
// standalone server or a small Cluster, each on free loopback ports with its
// files in t.TempDir(), killed when the test ends.
//
// When redis-server (or redis-cli, for a Cluster) is not on PATH the test is
// skipped, unless LICENSEGATE_REQUIRE_REDIS=1, in which case it fails: CI
// sets that so a missing server cannot pass silently.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure.
const RequireEnv = "LICENSEGATE_REQUIRE_REDIS"

// startTimeout bounds how long a server may take to answer PING, and a
// Cluster to report cluster_state:ok.
const startTimeout = 15 * time.Second

// Server is one redis-server process on a fixed loopback port. Stop and
// Start let a test simulate an outage: the port stays the same, so clients
// created before the outage reconnect to the new process.
type Server struct {
	bin  string
	dir  string
	port int
	args []string // beyond --port/--dir/--save/--appendonly/--logfile

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

// StartServer starts a standalone redis-server and returns its address.
func StartServer(t testing.TB) string {
	t.Helper()
	return NewServer(t).Addr()
}

// NewServer starts a standalone redis-server on a free loopback port; it is
// killed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	return NewServerArgs(t)
}

// NewDurableServer is NewServer with an fsync'ed append-only file, so data
// survives Stop and Start (an outage, not a wipe).
func NewDurableServer(t testing.TB) *Server {
	t.Helper()
	return NewServerArgs(t, "--appendonly", "yes", "--appendfsync", "always")
}

// NewServerArgs is NewServer with extra redis-server arguments (later
// arguments override the defaults).
func NewServerArgs(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := need(t, "redis-server")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ { // the port may be taken between probe and bind
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		s := &Server{bin: bin, dir: t.TempDir(), port: port, args: args}
		if lastErr = s.Start(); lastErr == nil {
			cleanup(t, s)
			return s
		}
		s.Stop()
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the server's working directory.
func (s *Server) Dir() string { return s.dir }

// Start starts the server (again) on its port and waits until it answers
// PING. Starting a running server is a no-op.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	if err := waitPing(s.Addr(), done); err != nil {
		s.stopLocked()
		return fmt.Errorf("redis-server on port %d: %w%s", s.port, err, s.logTail())
	}
	return nil
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sigCont) // in case it was paused
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Pause freezes the server (SIGSTOP): connections stay open and nothing
// answers, the way a hung or partitioned server looks to a client.
func (s *Server) Pause() error { return s.signal(sigStop) }

// Resume undoes Pause.
func (s *Server) Resume() error { return s.signal(sigCont) }

func (s *Server) signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("server not running")
	}
	return s.cmd.Process.Signal(sig)
}

func (s *Server) logTail() string {
	raw, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil || len(raw) == 0 {
		return ""
	}
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return "\nredis.log:\n" + string(raw)
}

func cleanup(t testing.TB, s *Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server %s log tail:%s", s.Addr(), s.logTail())
		}
		s.Stop()
	})
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts an n-master Redis Cluster (n >= 3) and returns its
// nodes' addresses.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	return NewCluster(t, n).Addrs()
}

// NewCluster starts n redis-server processes in cluster mode, joins them
// with redis-cli --cluster create and waits until every node reports
// cluster_state:ok.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("a Redis Cluster needs at least 3 masters, not %d", n)
	}
	bin := need(t, "redis-server")
	cli := need(t, "redis-cli")
	c := &Cluster{}
	used := map[int]bool{}
	for len(c.Servers) < n {
		var s *Server
		var lastErr error
		for attempt := 0; attempt < 5 && s == nil; attempt++ {
			port, err := freeClusterPort(used)
			if err != nil {
				t.Fatalf("finding a free port: %v", err)
			}
			cand := &Server{bin: bin, dir: t.TempDir(), port: port, args: []string{
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "3000",
			}}
			if lastErr = cand.Start(); lastErr != nil {
				cand.Stop()
				continue
			}
			used[port] = true
			cleanup(t, cand)
			s = cand
		}
		if s == nil {
			t.Fatalf("starting a cluster node: %v", lastErr)
		}
		c.Servers = append(c.Servers, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitOK(ctx, n); err != nil {
		t.Fatalf("cluster did not come up: %v", err)
	}
	return c
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

func (c *Cluster) waitOK(ctx context.Context, n int) error {
	for _, s := range c.Servers {
		rc := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		var info string
		for {
			var err error
			info, err = rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			select {
			case <-ctx.Done():
				rc.Close()
				return fmt.Errorf("%s: %v; last CLUSTER INFO:\n%s", s.Addr(), ctx.Err(), info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		rc.Close()
	}
	return nil
}

// need returns the path of a binary, or skips (or fails, when RequireEnv
// is set) the test.
func need(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s not found on PATH and %s=1: %v", name, RequireEnv, err)
	}
	t.Skipf("%s not found on PATH (set %s=1 to fail instead): %v", name, RequireEnv, err)
	return ""
}

func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		default:
		}
		if lastErr = ping(addr); lastErr == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %s: %w", startTimeout, lastErr)
}

// ping speaks RESP directly, so starting a server needs no client setup.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if got := string(buf[:n]); got != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", got)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeClusterPort finds a port p such that p and its cluster bus port
// p+10000 are both free (the default bus offset, understood by every
// Redis version).
func freeClusterPort(used map[int]bool) (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(20000)
		if used[p] || used[p+10000] || used[p-10000] {
			continue
		}
		if canListen(p) && canListen(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("no free port pair found")
}

func canListen(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

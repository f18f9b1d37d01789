// Package teststore opens the stores tests run on: an embedded store in
// the test's temporary directory, or a Redis store on a redis-server of
// the test's own (internal/redistest). Each is closed when the test ends.
package teststore

import (
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/internal/redistest"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
	redisstore "github.com/licensegate/licensegate/store/redis"
)

// Backends are the stores by name: embedded and redis.
var Backends = map[string]func(*testing.T) store.Store{"embedded": Embedded, "redis": Redis}

// Embedded opens an embedded store in t's temporary directory.
func Embedded(t *testing.T) store.Store {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Redis opens a Redis store on a redis-server of t's own.
func Redis(t *testing.T) store.Store {
	t.Helper()
	srv := redistest.NewServer(t)
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	rs := redisstore.New(client, redisstore.Options{})
	t.Cleanup(func() { _ = rs.Close() })
	return rs
}

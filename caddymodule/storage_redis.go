package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
	redisstore "github.com/licensegate/licensegate/store/redis"
)

func init() {
	caddy.RegisterModule(RedisStorage{})
}

// redisPool shares one client per Redis configuration between config
// generations, so a reload neither drops nor leaks connections.
var redisPool = caddy.NewUsagePool()

// RedisStorage keeps licensegate's state in Redis (standalone, Sentinel or
// Cluster) so several gateway instances share it. It requires an explicit
// secret, shared by every instance.
type RedisStorage struct {
	// Address is a redis:// or rediss:// URL for a standalone server,
	// e.g. redis://127.0.0.1:6379/0.
	Address string `json:"address,omitempty"`
	// Addresses lists Cluster nodes, or Sentinels when MasterName is set.
	Addresses []string `json:"addresses,omitempty"`
	// Cluster forces cluster mode with a single address (a cluster's
	// configuration endpoint).
	Cluster bool `json:"cluster,omitempty"`
	// MasterName is the Sentinel master's name.
	MasterName string `json:"master_name,omitempty"`
	// Username and Password authenticate (placeholders allowed).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS enables TLS to the servers.
	TLS bool `json:"tls,omitempty"`
	// KeyPrefix starts every key. Default: "lg:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds each store operation. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// DialTimeout bounds connecting. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	key    string
	store  *redisstore.Store
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (RedisStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "licensegate.storage.redis",
		New: func() caddy.Module { return new(RedisStorage) },
	}
}

// Provision connects (or reuses the running config's client) and pings
// Redis once, briefly: a Redis that is down at start is a warning, not a
// failed config load, and the gateway answers 503 until it is back.
func (s *RedisStorage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	opts, err := s.universalOptions()
	if err != nil {
		return err
	}
	prefix := s.KeyPrefix
	if prefix == "" {
		prefix = redisstore.DefaultKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		// A brace in the prefix would become every key's Cluster hash tag,
		// putting all licences in one slot.
		return fmt.Errorf("storage redis: key_prefix %q must not contain { or }", prefix)
	}
	timeout := durationOr(s.Timeout, 2*time.Second)
	s.key = poolKey(opts, prefix, timeout)
	val, _, err := redisPool.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		client := goredis.NewUniversalClient(opts)
		return redisHandle{client: client, store: redisstore.New(client, redisstore.Options{KeyPrefix: prefix, Timeout: timeout})}, nil
	})
	if err != nil {
		return err
	}
	s.store = val.(redisHandle).store
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(pctx); err != nil {
		s.logger.Warn("redis is not reachable yet; requests needing the store answer 503 until it is", zap.Error(err))
		return nil
	}
	s.checkPersistence(pctx)
	return nil
}

// checkPersistence warns when Redis keeps nothing across a restart: with
// neither AOF nor RDB, a restart loses every installation a 201 promised
// (issue 20, #8). A Redis that refuses CONFIG is reported as unknown.
func (s *RedisStorage) checkPersistence(ctx context.Context) {
	p, err := s.store.Persistence(ctx)
	switch {
	case err != nil:
		s.logger.Warn("could not read redis persistence", zap.Error(err))
	case p == store.PersistenceNone:
		s.logger.Warn("redis has neither AOF nor RDB persistence: a restart of redis loses every installation and token; " +
			"set appendonly yes (and appendfsync everysec or always)")
	case p == store.PersistenceUnknown:
		s.logger.Info("redis persistence unknown (CONFIG GET refused); make sure the service keeps its data across restarts")
	default:
		s.logger.Info("redis persistence", zap.String("persistence", p))
	}
}

func (s *RedisStorage) universalOptions() (*goredis.UniversalOptions, error) {
	username, err := resolveSecret("storage redis: username", s.Username)
	if err != nil {
		return nil, err
	}
	password, err := resolveSecret("storage redis: password", s.Password)
	if err != nil {
		return nil, err
	}
	dial := durationOr(s.DialTimeout, 2*time.Second)
	timeout := durationOr(s.Timeout, 2*time.Second)
	opts := &goredis.UniversalOptions{
		Username: username, Password: password, MasterName: s.MasterName, IsClusterMode: s.Cluster,
		DialTimeout: dial, ReadTimeout: timeout, WriteTimeout: timeout, ContextTimeoutEnabled: true,
	}
	switch {
	case s.Address != "" && len(s.Addresses) > 0:
		return nil, errors.New("storage redis: give address or addresses, not both")
	case s.Address != "":
		u, err := goredis.ParseURL(s.Address)
		if err != nil {
			// The parser's error quotes the URL, user info included: never
			// a password in a provisioning error (issue 20, L4).
			return nil, fmt.Errorf("storage redis: address: %s", withoutUserInfo(err.Error(), s.Address))
		}
		opts.Addrs, opts.DB, opts.TLSConfig = []string{u.Addr}, u.DB, u.TLSConfig
		if opts.Username == "" {
			opts.Username = u.Username
		}
		if opts.Password == "" {
			opts.Password = u.Password
		}
	case len(s.Addresses) > 0:
		opts.Addrs = s.Addresses
	default:
		return nil, errors.New("storage redis: address (standalone) or addresses (cluster, sentinel) is required")
	}
	if s.TLS && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// withoutUserInfo removes a URL's user info (user:password) from msg.
func withoutUserInfo(msg, rawURL string) string {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		rest = rawURL
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at <= 0 {
		return msg
	}
	userinfo := rest[:at]
	msg = strings.ReplaceAll(msg, userinfo, "REDACTED")
	if _, pass, ok := strings.Cut(userinfo, ":"); ok && pass != "" {
		msg = strings.ReplaceAll(msg, pass, "REDACTED")
	}
	return msg
}

// poolKey identifies a Redis configuration (hashed: it holds a password).
func poolKey(opts *goredis.UniversalOptions, prefix string, timeout time.Duration) string {
	raw, _ := json.Marshal(struct {
		Addrs                      []string
		DB                         int
		User, Pass, Master, Prefix string
		TLS, Cluster               bool
		Timeout, Dial              time.Duration
	}{opts.Addrs, opts.DB, opts.Username, opts.Password, opts.MasterName, prefix, opts.TLSConfig != nil, opts.IsClusterMode, timeout, opts.DialTimeout})
	sum := sha256.Sum256(raw)
	return "redis:" + hex.EncodeToString(sum[:])
}

// Store implements Storage.
func (s *RedisStorage) Store() store.Store { return s.store }

// Cleanup releases this config's use of the client; the last user closes
// it.
func (s *RedisStorage) Cleanup() error {
	if s.key == "" {
		return nil
	}
	_, err := redisPool.Delete(s.key)
	return err
}

type redisHandle struct {
	client goredis.UniversalClient
	store  *redisstore.Store
}

func (h redisHandle) Destruct() error {
	h.store.Close()
	return h.client.Close()
}

// Interface guards
var (
	_ caddy.Provisioner  = (*RedisStorage)(nil)
	_ caddy.CleanerUpper = (*RedisStorage)(nil)
	_ Storage            = (*RedisStorage)(nil)
)

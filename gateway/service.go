package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/tokens"
	"github.com/licensegate/licensegate/upstreams"
)

// Config holds the service's dependencies and token settings. New builds
// the signing key ring and the access-token issuer from them.
type Config struct {
	Store  store.Store
	Master *secret.Master
	// Issuer is the access tokens' iss claim. Default: DefaultIssuer.
	Issuer string
	// AccessTTL is the access tokens' lifetime. Default: 1h. A replaced
	// signing key keeps verifying this long (plus the leeway), until
	// every token it signed has expired.
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// RefreshReuseGrace is how long after a rotation the refresh token it
	// spent, presented again while its successor is unused, gets the same
	// answer instead of counting as reuse (SPEC section 4). 0: never.
	RefreshReuseGrace time.Duration
	Sources           map[string]upstreams.Source
	// Hooks are the store webhook checks, by source name (SPEC section 7):
	// a source without one receives no webhooks.
	Hooks map[string]upstreams.HookVerifier
	// Products are the products served, by name. New keeps its own
	// copies, read-only from then on.
	Products map[string]*Product
	// ProductOrder lists product names in the order a key is offered to
	// them when the installer names none: by name (the JSON config is a map,
	// so the Caddyfile's order is not kept).
	ProductOrder []string
	// KeyRotation makes a new signing key current when the current one is
	// this old (0: never on schedule). Instances sharing a store rotate
	// once between them.
	KeyRotation time.Duration
	// LastSeenInterval is how often the gate's noted installation uses
	// are written to the store, in one batch. Default: 1m.
	LastSeenInterval time.Duration
	// QuotaSyncInterval is how often the gates' quota counts are added to
	// the store's shared counters. Default: 1s.
	QuotaSyncInterval time.Duration
	// CountsInterval is how often the per-day counts (activations, gate
	// decisions by code) are added to the store's, in one batch.
	// Default: DefaultCountsInterval.
	CountsInterval time.Duration

	// AuditRetention is how long audit entries are kept (0: forever);
	// OutboxRetention how long delivered outbox entries are (default
	// DefaultOutboxRetention). The retention worker trims both.
	AuditRetention  time.Duration
	OutboxRetention time.Duration
	// Cache tunes the gate's licence-state cache.
	Cache store.CacheConfig
	// Now is the clock of the service, its key ring and its cache
	// (tests set it). Default: time.Now.
	Now    func() time.Time
	Logger *zap.Logger
	// Observer is told about decisions, exchanges and store errors
	// (metrics). Default: NopObserver.
	Observer Observer
	// InstanceID names this instance as a lease holder (the recheck
	// worker's). Default: a random id, new for every Service.
	InstanceID string
}

// Token defaults, for a Config that leaves them unset.
const (
	DefaultIssuer     = "licensegate"
	defaultAccessTTL  = time.Hour
	defaultRefreshTTL = 365 * 24 * time.Hour
)

// Service is the gateway. It is safe for concurrent use.
type Service struct {
	cfg     Config
	now     func() time.Time
	log     *zap.Logger
	obs     Observer
	ring    *tokens.Ring
	issuer  *tokens.Issuer
	cache   *store.StateCache
	gate    *Gate // any product: for the installation endpoints
	flights singleflight.Group
	seen    *seenTracker
	daily   dailyCounts

	quotaMu sync.Mutex
	quotas  []*quotaCounter

	keysMu    sync.Mutex
	keysTried time.Time

	recheck *rechecker

	credMu      sync.Mutex
	credAlerted map[string]time.Time // source -> last source.credential_failing
	hookAlerted map[string]time.Time // source -> last source.webhook_refused (under credMu)
	portals     portals
}

// New returns a Service with its key ring, issuer and status cache. It
// does no I/O: the ring is loaded by the key_reload worker (Workers), by
// LoadKeys, or on first use. Product configuration (sources named, rules)
// is the caller's to have checked.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Master == nil {
		return nil, errors.New("gateway: store and master secret are required")
	}
	if cfg.RefreshReuseGrace < 0 {
		return nil, errors.New("gateway: the refresh reuse grace must not be negative")
	}
	cfg = withDefaults(cfg)
	cfg.Products = provisionProducts(cfg.Products)
	s := &Service{cfg: cfg, now: cfg.Now, log: cfg.Logger, obs: cfg.Observer, seen: newSeenTracker()}
	s.ring = tokens.NewRing(cfg.Store, cfg.Master, cfg.Now)
	// A replaced key must verify every token it signed until that token
	// expires (with the leeway the verifier allows), and no longer.
	s.ring.SetRetention(cfg.AccessTTL + tokens.Leeway)
	s.issuer = tokens.NewIssuer(s.ring, cfg.Issuer, cfg.AccessTTL)
	s.cache = store.NewStateCache(cfg.Store, cfg.Cache)
	s.gate = s.Gate(nil)
	s.recheck = newRechecker(s)
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = defaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = defaultRefreshTTL
	}
	if cfg.OutboxRetention <= 0 {
		cfg.OutboxRetention = DefaultOutboxRetention
	}
	if cfg.Cache.Now == nil {
		cfg.Cache.Now = cfg.Now
	}
	if cfg.InstanceID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.InstanceID = "gw_" + hex.EncodeToString(b)
	}
	return cfg
}

// LoadKeys reads the signing key ring from the store, creating the first
// key when the store has none.
func (s *Service) LoadKeys(ctx context.Context) error { return s.ring.Load(ctx) }

// EnsureKeys makes sure the key ring is loaded, trying the store at most
// once a second while it is not (the store was down at start). The gate
// answers 503 rather than refusing good tokens while there are no keys.
func (s *Service) EnsureKeys(ctx context.Context) error {
	if s.ring.Loaded() {
		return nil
	}
	now := s.now()
	s.keysMu.Lock()
	if now.Sub(s.keysTried) < time.Second {
		s.keysMu.Unlock()
		return storeUnavailable(tokens.ErrNoKey)
	}
	prev := s.keysTried
	s.keysTried = now
	s.keysMu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.ring.Load(lctx); err != nil {
		if ctx.Err() != nil {
			// The caller left: the attempt says nothing about the store,
			// so the next caller tries at once.
			s.keysMu.Lock()
			if s.keysTried.Equal(now) {
				s.keysTried = prev
			}
			s.keysMu.Unlock()
			return clientClosed(err)
		}
		return storeUnavailable(err)
	}
	return nil
}

// JWKS returns the public signing keys as a JWK Set.
func (s *Service) JWKS() []byte { return s.ring.JWKS() }

// licenseID is the stable, secret-keyed id of a key at a source.
func (s *Service) licenseID(source, canonicalKey string) string {
	return "lic_" + s.cfg.Master.Hash("license", source, canonicalKey)[:32]
}

func newInstallationID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "ins_" + hex.EncodeToString(b)
}

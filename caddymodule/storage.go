package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/secret"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/store/embedded"
)

func init() {
	caddy.RegisterModule(EmbeddedStorage{})
}

// embeddedPool shares one open bbolt file between config generations:
// Caddy provisions a new config before it stops the old one, and bbolt
// holds an exclusive file lock.
var embeddedPool = caddy.NewUsagePool()

// EmbeddedStorage is the single-instance store, a bbolt file.
type EmbeddedStorage struct {
	// Path is the store file. Default: licensegate/licensegate.db in
	// Caddy's data directory.
	Path string `json:"path,omitempty"`

	path   string
	store  *embedded.Store
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (EmbeddedStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "licensegate.storage.embedded",
		New: func() caddy.Module { return new(EmbeddedStorage) },
	}
}

// Provision opens the file, or takes the handle the running config holds.
func (s *EmbeddedStorage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	path := s.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "licensegate", "licensegate.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("storage embedded: path %q: %w", path, err)
	}
	s.path = abs
	val, _, err := embeddedPool.LoadOrNew(abs, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, fmt.Errorf("storage embedded: creating folder: %w", err)
		}
		st, err := embedded.Open(abs, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("storage embedded: %w (another licensegate process may hold the file; use 'licensegate reload' to change a running one's config)", err)
		}
		return embeddedHandle{st}, nil
	})
	if err != nil {
		return err
	}
	s.store = val.(embeddedHandle).Store
	return nil
}

// Store implements Storage.
func (s *EmbeddedStorage) Store() store.Store { return s.store }

// LoadOrCreateSecret implements SecretKeeper: the secret lives in
// "secret" beside the store file, mode 0600.
func (s *EmbeddedStorage) LoadOrCreateSecret() (string, bool, string, error) {
	path := filepath.Join(filepath.Dir(s.path), "secret")
	v, created, err := secret.LoadOrCreateFile(path)
	return v, created, path, err
}

// Cleanup releases this config's use of the file; the last user closes it.
func (s *EmbeddedStorage) Cleanup() error {
	if s.path == "" {
		return nil
	}
	_, err := embeddedPool.Delete(s.path)
	return err
}

type embeddedHandle struct{ *embedded.Store }

func (h embeddedHandle) Destruct() error { return h.Store.Close() }

// Interface guards
var (
	_ caddy.Provisioner  = (*EmbeddedStorage)(nil)
	_ caddy.CleanerUpper = (*EmbeddedStorage)(nil)
	_ Storage            = (*EmbeddedStorage)(nil)
	_ SecretKeeper       = (*EmbeddedStorage)(nil)
)

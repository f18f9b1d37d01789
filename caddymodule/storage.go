package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	raw, err := os.ReadFile(path)
	if err == nil {
		v := strings.TrimSpace(string(raw))
		if len(v) < secret.MinLength {
			return "", false, path, fmt.Errorf("%s holds fewer than %d characters", path, secret.MinLength)
		}
		return v, false, path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, path, fmt.Errorf("reading %s: %w", path, err)
	}
	v := secret.Generate()
	created, err := createDurably(path, []byte(v+"\n"))
	if err != nil {
		return "", false, path, err
	}
	if !created { // created concurrently: use that one
		return s.LoadOrCreateSecret()
	}
	return v, true, path, nil
}

// createDurably writes data to path unless path exists (created false), so
// that once it returns the file survives a crash: written to a temporary
// file, fsynced, linked into place (atomic, never replacing a file another
// instance created meanwhile), then the directory fsynced. The store may
// hold data sealed with the secret moments later; losing the file then
// would lose that data.
func createDurably(path string, data []byte) (created bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := writeSynced(f, data); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	return true, nil
}

// writeSynced writes data to f (mode 0600), fsyncs and closes it.
func writeSynced(f *os.File, data []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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

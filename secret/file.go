package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateFile reads the master secret kept in the file at path, or
// generates one and creates the file (mode 0600, durably) when there is
// none; created says which. The embedded store keeps its secret so.
func LoadOrCreateFile(path string) (string, bool, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		v := strings.TrimSpace(string(raw))
		if len(v) < MinLength {
			return "", false, fmt.Errorf("%s holds fewer than %d characters", path, MinLength)
		}
		return v, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("reading %s: %w", path, err)
	}
	v := Generate()
	created, err := createDurably(path, []byte(v+"\n"))
	if err != nil {
		return "", false, err
	}
	if !created { // created concurrently: use that one
		return LoadOrCreateFile(path)
	}
	return v, true, nil
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

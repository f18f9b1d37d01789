// Package static is the author's own key list: a CSV file with a header row
// key,product,type,licensed_to,expires_at,support_until,activations,status
// re-read whenever it changes on disk (looked at at most once a second; a
// recheck looks at once).
package static

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

// columns are the CSV's header, in any order; key and product are required.
var columns = []string{"key", "product", "type", "licensed_to", "expires_at", "support_until", "activations", "status", "email"}

type entry struct {
	record upstreams.Record
	status string // active, revoked, suspended
}

// Source verifies keys against a CSV file.
type Source struct {
	name string
	path string
	now  func() time.Time

	mu      sync.Mutex
	modTime time.Time
	size    int64
	checked time.Time
	keys    map[string]entry
	lastErr error
}

// New loads path. A file that cannot be parsed is an error here; later
// edits that break it keep the last good contents (and are reported by
// Err).
func New(name, path string) (*Source, error) {
	s := &Source{name: name, path: path, now: time.Now}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name implements upstreams.Source.
func (s *Source) Name() string { return s.name }

// Local implements upstreams.Local.
func (s *Source) Local() bool { return true }

// CanonicalKey implements upstreams.Source: the author's keys have any
// format, so only the common checks apply.
func (s *Source) CanonicalKey(key string) (string, error) {
	return upstreams.CleanKeyWithin(key, upstreams.MaxKeyLength)
}

// Verify implements upstreams.Source.
func (s *Source) Verify(_ context.Context, req upstreams.Request) upstreams.Verdict {
	keys, err := s.current()
	if keys == nil {
		return upstreams.UnknownVerdict(err)
	}
	e, ok := keys[req.Key]
	if !ok {
		return upstreams.InvalidVerdict(upstreams.NotFound)
	}
	switch e.status {
	case "revoked":
		return upstreams.InvalidVerdict(upstreams.Revoked)
	case "suspended":
		return upstreams.InvalidVerdict(upstreams.Suspended)
	}
	return upstreams.ValidVerdict(e.record)
}

// Recheck implements upstreams.Rechecker: the file is looked at now (not
// after the once-a-second pause of Verify) and re-read if it changed.
func (s *Source) Recheck(ctx context.Context, req upstreams.RecheckRequest) upstreams.Verdict {
	s.mu.Lock()
	s.checked = time.Time{}
	s.mu.Unlock()
	return s.Verify(ctx, upstreams.Request{Key: req.Key, Product: req.Product})
}

// Err returns the last reload failure, if the file is currently broken.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// current returns the key map, re-reading the file when it changed. The
// file is stat'ed at most once a second.
func (s *Source) current() (map[string]entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.checked) >= time.Second {
		s.checked = now
		if fi, err := os.Stat(s.path); err == nil && (!fi.ModTime().Equal(s.modTime) || fi.Size() != s.size) {
			s.lastErr = s.reloadLocked()
		}
	}
	return s.keys, s.lastErr
}

func (s *Source) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Source) reloadLocked() error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("opening static keys file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading static keys file: %w", err)
	}
	keys, err := Parse(f)
	if err != nil {
		return fmt.Errorf("static keys file %s: %w", s.path, err)
	}
	s.keys, s.modTime, s.size = keys, fi.ModTime(), fi.Size()
	return nil
}

// Parse reads the CSV format.
func Parse(r io.Reader) (map[string]entry, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	idx, err := columnIndex(header)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]entry)
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		e, key, err := parseRow(row, idx)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if _, dup := keys[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key", line)
		}
		keys[key] = e
	}
}

func columnIndex(header []string) (map[string]int, error) {
	idx := make(map[string]int)
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(columns, name) {
			return nil, fmt.Errorf("header: unknown column %q (want %s)", h, strings.Join(columns, ","))
		}
		if _, dup := idx[name]; dup {
			return nil, fmt.Errorf("header: column %q given twice", h)
		}
		idx[name] = i
	}
	for _, c := range []string{"key", "product"} {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("header has no %q column (want %s)", c, strings.Join(columns, ","))
		}
	}
	return idx, nil
}

func parseRow(row []string, idx map[string]int) (entry, string, error) {
	get := func(col string) string {
		if i, ok := idx[col]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	key, err := upstreams.CleanKeyWithin(get("key"), upstreams.MaxKeyLength)
	if err != nil {
		return entry{}, "", err
	}
	e := entry{record: upstreams.Record{Product: get("product"), Type: get("type"), LicensedTo: get("licensed_to"), Email: get("email")}}
	if e.record.Product == "" {
		return entry{}, "", errors.New("product is empty")
	}
	if e.record.ExpiresAt, err = parseTime(get("expires_at")); err != nil {
		return entry{}, "", fmt.Errorf("expires_at: %w", err)
	}
	if e.record.SupportUntil, err = parseTime(get("support_until")); err != nil {
		return entry{}, "", fmt.Errorf("support_until: %w", err)
	}
	if a := get("activations"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return entry{}, "", fmt.Errorf("activations: %q is not a non-negative number", a)
		}
		e.record.ActivationsLimit = n
	}
	switch e.status = strings.ToLower(get("status")); e.status {
	case "":
		e.status = "active"
	case "active", "revoked", "suspended":
	default:
		return entry{}, "", fmt.Errorf("status %q is not active, revoked or suspended", e.status)
	}
	return e, key, nil
}

func parseTime(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	t = t.UTC()
	return &t, nil
}

// Interface guards
var (
	_ upstreams.Source    = (*Source)(nil)
	_ upstreams.Local     = (*Source)(nil)
	_ upstreams.Rechecker = (*Source)(nil)
)

package static

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/upstreams"
)

func date(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	t = t.UTC()
	return &t
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b) && a.Location() == time.UTC && b.Location() == time.UTC
}

func sameRecord(a, b upstreams.Record) bool {
	return a.Product == b.Product && a.Type == b.Type && a.LicensedTo == b.LicensedTo &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.SupportUntil, b.SupportUntil) &&
		a.Retired == b.Retired && a.ActivationsLimit == b.ActivationsLimit
}

const fullCSV = `key,product,type,licensed_to,expires_at,support_until,activations,status
K-ACTIVE,converter-pro,extended,Jane Buyer,2027-01-01T00:00:00Z,2026-09-01T12:00:00+02:00,3,active
K-MIN,converter-pro,,,,,,
K-REVOKED,converter-pro,regular,Bob,,,,revoked
K-SUSPENDED,blog-scraper,regular,"Smith, Ann",,,1,Suspended
`

func TestParse(t *testing.T) {
	type want struct {
		rec    upstreams.Record
		status string
	}
	tests := []struct {
		name    string
		csv     string
		want    map[string]want
		wantErr string // substring; "" for success
	}{
		{
			name: "all columns",
			csv:  fullCSV,
			want: map[string]want{
				"K-ACTIVE": {upstreams.Record{Product: "converter-pro", Type: "extended", LicensedTo: "Jane Buyer",
					ExpiresAt: date("2027-01-01T00:00:00Z"), SupportUntil: date("2026-09-01T10:00:00Z"), ActivationsLimit: 3}, "active"},
				"K-MIN":       {upstreams.Record{Product: "converter-pro"}, "active"},
				"K-REVOKED":   {upstreams.Record{Product: "converter-pro", Type: "regular", LicensedTo: "Bob"}, "revoked"},
				"K-SUSPENDED": {upstreams.Record{Product: "blog-scraper", Type: "regular", LicensedTo: "Smith, Ann", ActivationsLimit: 1}, "suspended"},
			},
		},
		{
			name: "header in another order, case and spaces",
			csv: " Status ,ACTIVATIONS,product, key ,licensed_to\n" +
				"revoked,2,converter-pro,K1,Ann\n" +
				",,converter-pro,K2,\n",
			want: map[string]want{
				"K1": {upstreams.Record{Product: "converter-pro", LicensedTo: "Ann", ActivationsLimit: 2}, "revoked"},
				"K2": {upstreams.Record{Product: "converter-pro"}, "active"},
			},
		},
		{
			name: "only required columns",
			csv:  "product,key\np,K1\n",
			want: map[string]want{"K1": {upstreams.Record{Product: "p"}, "active"}},
		},
		{
			name: "comments, blank lines and padding",
			csv:  "# the author's keys\nkey,product,status\n# a comment\nK1,p,active\n\n  K2 ,  p  , suspended \n#K3,p,active\n",
			want: map[string]want{
				"K1": {upstreams.Record{Product: "p"}, "active"},
				"K2": {upstreams.Record{Product: "p"}, "suspended"},
			},
		},
		{
			name:    "unknown column is refused (a misspelt activations must not be ignored)",
			csv:     "key,product,activatons\nK1,p,3\n",
			wantErr: `unknown column "activatons"`,
		},
		{name: "column twice", csv: "key,product,key\nK1,p,K2\n", wantErr: `given twice`},
		{name: "header only", csv: "key,product\n", want: map[string]want{}},

		{name: "empty file", csv: "", wantErr: "reading header"},
		{name: "only comments", csv: "# nothing\n", wantErr: "reading header"},
		{name: "missing key column", csv: "type,product\nK1,p\n", wantErr: `no "key" column`},
		{name: "missing product column", csv: "key,type\nK1,regular\n", wantErr: `no "product" column`},
		{name: "empty product", csv: "key,product\nK1,p\nK2,\n", wantErr: "line 3: product is empty"},
		{name: "bad expires_at", csv: "key,product,expires_at\nK1,p,2027-01-01\n", wantErr: "line 2: expires_at"},
		{name: "bad support_until", csv: "key,product,support_until\nK1,p,tomorrow\n", wantErr: "line 2: support_until"},
		{name: "bad activations word", csv: "key,product,activations\nK1,p,two\n", wantErr: "line 2: activations"},
		{name: "negative activations", csv: "key,product,activations\nK1,p,-1\n", wantErr: "line 2: activations"},
		{name: "fractional activations", csv: "key,product,activations\nK1,p,1.5\n", wantErr: "activations"},
		{name: "bad status", csv: "key,product,status\nK1,p,refunded\n", wantErr: `status "refunded"`},
		{name: "duplicate key", csv: "key,product\nK1,p\nK2,p\nK1,q\n", wantErr: "line 4: duplicate key"},
		{name: "duplicate key after trimming", csv: "key,product\nK1,p\n\" K1\u00a0\",q\n", wantErr: "duplicate key"},
		{name: "non-ASCII key", csv: "key,product\nK\u20131,p\n", wantErr: "non-ASCII"},
		{name: "empty key", csv: "key,product\n,p\n", wantErr: "empty"},
		{name: "key with inner space", csv: "key,product\nK 1,p\n", wantErr: "spaces"},
		{name: "wrong field count", csv: "key,product\nK1,p,extra\n", wantErr: "fields"},
		{name: "bare quote", csv: "key,product\nK\"1,p\n", wantErr: "quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.csv))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse succeeded with %d keys, want an error with %q", len(got), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				if got != nil {
					t.Fatal("keys returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d keys, want %d: %v", len(got), len(tt.want), got)
			}
			for k, w := range tt.want {
				e, ok := got[k]
				if !ok {
					t.Fatalf("key %q missing", k)
				}
				if e.status != w.status || !sameRecord(e.record, w.rec) {
					t.Fatalf("key %q = %+v (%s), want %+v (%s)", k, e.record, e.status, w.rec, w.status)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSource(t *testing.T, content string) (*Source, string, *fakeClock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.csv")
	writeFile(t, path, content, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := New("static", path)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clk := &fakeClock{t: time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)}
	s.now = clk.Now
	return s, path, clk
}

func verify(s *Source, key string) upstreams.Verdict {
	return s.Verify(context.Background(), upstreams.Request{Key: key, Product: "converter-pro", Domain: "acme.com"})
}

func TestVerify(t *testing.T) {
	s, _, _ := newSource(t, fullCSV)
	if s.Name() != "static" || !s.Local() {
		t.Fatalf("Name/Local = %q/%v", s.Name(), s.Local())
	}
	if k, err := s.CanonicalKey("  K-ACTIVE\u200b"); err != nil || k != "K-ACTIVE" {
		t.Fatalf("CanonicalKey = %q, %v", k, err)
	}
	if _, err := s.CanonicalKey("K\u2013ACTIVE"); !errors.Is(err, upstreams.ErrKeyFormat) {
		t.Fatalf("CanonicalKey(look-alike) = %v, want ErrKeyFormat", err)
	}
	tests := []struct {
		key     string
		outcome upstreams.Outcome
		reason  upstreams.Reason
		rec     upstreams.Record
	}{
		{"K-ACTIVE", upstreams.Valid, "", upstreams.Record{Product: "converter-pro", Type: "extended", LicensedTo: "Jane Buyer",
			ExpiresAt: date("2027-01-01T00:00:00Z"), SupportUntil: date("2026-09-01T10:00:00Z"), ActivationsLimit: 3}},
		{"K-MIN", upstreams.Valid, "", upstreams.Record{Product: "converter-pro"}},
		{"K-REVOKED", upstreams.Invalid, upstreams.Revoked, upstreams.Record{}},
		{"K-SUSPENDED", upstreams.Invalid, upstreams.Suspended, upstreams.Record{}},
		{"K-UNKNOWN", upstreams.Invalid, upstreams.NotFound, upstreams.Record{}},
		{"k-active", upstreams.Invalid, upstreams.NotFound, upstreams.Record{}}, // keys are case-sensitive
		{"", upstreams.Invalid, upstreams.NotFound, upstreams.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			v := verify(s, tt.key)
			if v.Outcome != tt.outcome || v.Reason != tt.reason {
				t.Fatalf("Verify(%q) = %v/%s, want %v/%s", tt.key, v.Outcome, v.Reason, tt.outcome, tt.reason)
			}
			if tt.outcome == upstreams.Valid && !sameRecord(v.Record, tt.rec) {
				t.Fatalf("record %+v, want %+v", v.Record, tt.rec)
			}
		})
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err = %v on a good file", err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New("static", filepath.Join(dir, "missing.csv")); err == nil {
		t.Fatal("New on a missing file succeeded")
	}
	bad := filepath.Join(dir, "bad.csv")
	writeFile(t, bad, "key,product,status\nK1,p,maybe\n", time.Now())
	_, err := New("static", bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("New on a broken file = %v, want an error naming the file and line", err)
	}
}

func TestHotReload(t *testing.T) {
	s, path, clk := newSource(t, "key,product\nK1,converter-pro\n")
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if v := verify(s, "K1"); v.Outcome != upstreams.Valid {
		t.Fatalf("K1 = %v before the change", v.Outcome)
	}

	// Same size, new mtime: K1 -> K2.
	mtime = mtime.Add(time.Minute)
	writeFile(t, path, "key,product\nK2,converter-pro\n", mtime)

	clk.Advance(500 * time.Millisecond)
	if v := verify(s, "K1"); v.Outcome != upstreams.Valid {
		t.Fatalf("the file was re-read within a second of the last check (K1 = %v)", v.Outcome)
	}
	clk.Advance(600 * time.Millisecond)
	if v := verify(s, "K2"); v.Outcome != upstreams.Valid {
		t.Fatalf("new key K2 = %v/%s after >1s, want valid", v.Outcome, v.Reason)
	}
	if v := verify(s, "K1"); v.Outcome != upstreams.Invalid || v.Reason != upstreams.NotFound {
		t.Fatalf("removed key K1 = %v/%s, want not found", v.Outcome, v.Reason)
	}

	// Same mtime but a different size is noticed too.
	writeFile(t, path, "key,product,status\nK2,converter-pro,revoked\n", mtime)
	clk.Advance(time.Second)
	if v := verify(s, "K2"); v.Reason != upstreams.Revoked {
		t.Fatalf("K2 = %v/%s after a same-mtime rewrite, want revoked", v.Outcome, v.Reason)
	}

	// A broken rewrite keeps the last good keys and is reported.
	mtime = mtime.Add(time.Minute)
	writeFile(t, path, "key,product,status\nK3,converter-pro,bogus\n", mtime)
	clk.Advance(time.Second)
	if v := verify(s, "K2"); v.Reason != upstreams.Revoked {
		t.Fatalf("K2 = %v/%s after a broken rewrite, want the old revoked entry", v.Outcome, v.Reason)
	}
	if v := verify(s, "K3"); v.Outcome != upstreams.Invalid || v.Reason != upstreams.NotFound {
		t.Fatalf("K3 from the broken file = %v/%s", v.Outcome, v.Reason)
	}
	err := s.Err()
	if err == nil || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Err = %v, want the parse failure naming the file", err)
	}
	// Still broken a second later: still reported, still serving.
	clk.Advance(time.Second)
	if v := verify(s, "K2"); v.Reason != upstreams.Revoked || s.Err() == nil {
		t.Fatalf("K2 = %v/%s, Err = %v", v.Outcome, v.Reason, s.Err())
	}

	// Fixing the file clears the error.
	mtime = mtime.Add(time.Minute)
	writeFile(t, path, "key,product\nK3,converter-pro\n", mtime)
	clk.Advance(time.Second)
	if v := verify(s, "K3"); v.Outcome != upstreams.Valid {
		t.Fatalf("K3 = %v/%s after the fix", v.Outcome, v.Reason)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err = %v after the file was fixed", err)
	}
}

func TestConcurrentVerifyDuringReload(t *testing.T) {
	s, path, clk := newSource(t, "key,product\nK1,p\n")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if v := verify(s, "K1"); v.Outcome != upstreams.Valid {
					t.Errorf("K1 = %v/%s during reloads", v.Outcome, v.Reason)
					return
				}
			}
		}()
	}
	mtime := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 20; i++ {
		mtime = mtime.Add(time.Second)
		content := "key,product\nK1,p\n"
		if i%2 == 0 {
			content = "key,product\nK1,p\nK2,p\n"
		}
		// Write to a temporary file and rename, as an editor would, so a
		// reader never sees a half-written file.
		tmp := path + ".tmp"
		writeFile(t, tmp, content, mtime)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	wg.Wait()
}

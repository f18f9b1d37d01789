// Package browsertest drives pages in a real browser: Debian's headless
// Chromium through chromedp. Every test of a process shares one Chromium
// (starting it is the slow part), each in a browser context of its own,
// so cookies never leak from one test to another.
//
// Without Chromium the tests are skipped, unless LICENSEGATE_REQUIRE_CHROMIUM
// is 1 (CI installs it), in which case they fail.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireEnv makes a missing Chromium a failure instead of a skip.
const RequireEnv = "LICENSEGATE_REQUIRE_CHROMIUM"

// ScreenshotsEnv, when set, is a directory every screenshot is copied to
// (to refresh the ones the docs show).
const ScreenshotsEnv = "LICENSEGATE_SCREENSHOTS"

var shared struct {
	once   sync.Once
	ctx    context.Context // the browser's
	cancel func()
	err    string
}

// execPath finds Chromium.
func execPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// start launches the shared browser once.
func start() {
	path := execPath()
	if path == "" {
		shared.err = "no chromium on PATH (apt-get install chromium)"
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1200, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelCtx()
		cancelAlloc()
		shared.err = "starting chromium: " + err.Error()
		return
	}
	shared.ctx = ctx
	shared.cancel = func() { cancelCtx(); cancelAlloc() }
}

// New returns a tab in a fresh browser context of the shared browser,
// closed when t ends; each action on it must finish within timeout.
func New(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	shared.once.Do(start)
	if shared.ctx == nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("browser tests need Chromium: %s", shared.err)
		}
		t.Skipf("browser tests need Chromium: %s", shared.err)
	}
	tab, cancelTab := chromedp.NewContext(shared.ctx, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tab, timeout)
	t.Cleanup(func() { cancel(); cancelTab() })
	return ctx
}

// Close stops the shared browser; call it from TestMain after m.Run.
func Close() {
	if shared.cancel != nil {
		shared.cancel()
	}
}

// Screenshot captures the whole page as name.png in dir (and in
// $LICENSEGATE_SCREENSHOTS when set), returning its path.
func Screenshot(t *testing.T, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (below it: JPEG)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv(ScreenshotsEnv); out != "" {
		if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s", path)
	return path
}

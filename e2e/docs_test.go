package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The docs test (issue 21): the README and docs/*.md cannot drift from the
// binary. Every fenced block of those files is classified by its language
// and by an optional marker, an HTML comment on the lines before its fence
// (blank lines between are allowed):
//
//	<!-- docs-test: KIND [text] -->
//
// ```caddyfile (or ```caddy) blocks are adapted with `licensegate adapt
// --adapter caddyfile`, and a failure names the block's file:line (and the
// line inside it). Without a marker a block is a whole Caddyfile. Markers:
//
//	route          handler directives (handle, license_gate, ...): wrapped in
//	               a site, beside a minimal licensegate app
//	app            options of the global licensegate block (product,
//	               storage, source, ...): wrapped in { licensegate { ... } }
//	skip <reason>  not adapted; the reason is required and the test logs
//	               every skipped block
//
// ```sh, ```bash, ```shell and ```console blocks must carry a marker:
//
//	walkthrough    (README only) run in document order by one sh, with
//	               real curl, against the quick start's gateway (the built
//	               binary on Caddyfile.example in a temporary data
//	               directory, its ports moved to free ones): see
//	               TestDocsWalkthrough for what each command must show
//	cli            a console transcript of `$ licensegate ...` commands, run
//	               against a fresh quick-start gateway after the README's
//	               first walk-through block, each output compared with the
//	               documented one: see TestDocsCLITranscript
//	skip <reason>  not run, logged
//
// ```json blocks may carry:
//
//	output         the JSON the walk-through block before it prints must
//	               have the same members and values ("…" in a string
//	               stands for any text there)
//	json-subset    every member must be in the adapt output of the
//	               nearest ```caddyfile block above it in the same file,
//	               with the same value (a product's "mappings" only when
//	               adapt writes that field)
//
// Any other block is not run, but one that looks like a Caddyfile (a
// line opening a licensegate, handle, product, ... block) fails until it
// is labelled ```caddyfile. A marker that fits no block, or no block's
// language, fails too.

// docsRouteApp is the licensegate app of a route fragment's Caddyfile.
const docsRouteApp = `{
	licensegate {
		source static {
			file keys.csv
		}
		product converter-pro {
			sources static
		}
	}
}
http://localhost {
`

// wrapCaddyfile makes a block a whole Caddyfile, returning it and the
// number of lines put before the block's first line.
func wrapCaddyfile(b docBlock) (string, int) {
	switch b.kind {
	case "route":
		return docsRouteApp + b.body + "}\n", strings.Count(docsRouteApp, "\n")
	case "app":
		return "{\n\tlicensegate {\n" + b.body + "\t}\n}\n", 2
	}
	return b.body, 0
}

// adaptDocBlock adapts a Caddyfile block with the binary and returns the
// JSON, or an error naming the block's file:line.
func adaptDocBlock(t *testing.T, b docBlock) (map[string]any, error) {
	t.Helper()
	dir := t.TempDir()
	text, offset := wrapCaddyfile(b)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	what := map[string]string{"": "a whole Caddyfile", "route": "route fragment, wrapped in a site",
		"app": "licensegate app fragment, wrapped in the global licensegate block"}[b.kind]
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: the ```caddyfile block (%s) does not adapt: %s", b.where(), what,
			adaptMessages(stderr.String(), path, b, offset))
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &cfg); err != nil {
		return nil, fmt.Errorf("%s: adapt wrote no JSON: %v\n%s", b.where(), err, stdout.String())
	}
	return cfg, nil
}

// adaptMessages returns adapt's error messages, with the temporary
// file's line numbers turned into the documentation's.
func adaptMessages(stderr, path string, b docBlock, offset int) string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &entry) == nil {
			if entry.Level == "error" || entry.Level == "fatal" {
				msgs = append(msgs, entry.Msg)
			}
		} else if strings.TrimSpace(l) != "" {
			msgs = append(msgs, l)
		}
	}
	out := strings.Join(msgs, "\n")
	lineRef := regexp.MustCompile(regexp.QuoteMeta(path) + `:(\d+)`)
	return lineRef.ReplaceAllStringFunc(out, func(m string) string {
		n, _ := strconv.Atoi(lineRef.FindStringSubmatch(m)[1])
		if n <= offset {
			return fmt.Sprintf("%s (line %d of the wrapper)", b.where(), n)
		}
		return fmt.Sprintf("%s:%d", b.file, b.line+n-offset)
	})
}

// TestDocsBlocksAreCovered: every block fits the rules above, and every
// shell block is run or skipped with a reason.
func TestDocsBlocksAreCovered(t *testing.T) {
	counts := map[string]int{}
	var skipped []string
	for _, b := range allDocBlocks(t) {
		if err := checkMarker(b); err != nil {
			t.Error(err)
		}
		counts[b.lang+"/"+b.kind]++
		if b.kind == "skip" {
			skipped = append(skipped, fmt.Sprintf("%s ```%s (%s)", b.where(), b.lang, b.reason))
		}
	}
	t.Logf("blocks by language/marker: %v", counts)
	t.Logf("skipped %d blocks:\n\t%s", len(skipped), strings.Join(skipped, "\n\t"))
}

// TestDocsCaddyfilesAdapt adapts every ```caddyfile block, and checks each
// json-subset block against the adapt output of the block above it.
func TestDocsCaddyfilesAdapt(t *testing.T) {
	var adapted, skipped []string
	adaptedOf := map[string]map[string]any{} // by where()
	var lastCaddyfile docBlock
	for _, b := range allDocBlocks(t) {
		switch {
		case slices.Contains(caddyfileLangs, b.lang):
			lastCaddyfile = b
			if b.kind == "skip" {
				skipped = append(skipped, fmt.Sprintf("%s (%s)", b.where(), b.reason))
				continue
			}
			cfg, err := adaptDocBlock(t, b)
			if err != nil {
				t.Error(err)
				continue
			}
			adaptedOf[b.where()] = cfg
			adapted = append(adapted, fmt.Sprintf("%s %s", b.where(), map[string]string{"": "whole", "route": "route", "app": "app"}[b.kind]))
		case b.lang == "json" && b.kind == "json-subset":
			if lastCaddyfile.file != b.file {
				t.Errorf("%s: json-subset block without a ```caddyfile block above it", b.where())
				continue
			}
			cfg, ok := adaptedOf[lastCaddyfile.where()]
			if !ok {
				t.Errorf("%s: json-subset of %s, which was not adapted", b.where(), lastCaddyfile.where())
				continue
			}
			var doc any
			if err := json.Unmarshal([]byte(b.body), &doc); err != nil {
				t.Errorf("%s: not JSON: %v", b.where(), err)
				continue
			}
			for _, d := range jsonSubset(doc, cfg, "") {
				t.Errorf("%s: not what adapt writes for %s: %s", b.where(), lastCaddyfile.where(), d)
			}
		}
	}
	if len(adapted) == 0 {
		t.Fatal("no ```caddyfile block found")
	}
	t.Logf("adapted %d ```caddyfile blocks:\n\t%s", len(adapted), strings.Join(adapted, "\n\t"))
	t.Logf("skipped %d ```caddyfile blocks:\n\t%s", len(skipped), strings.Join(skipped, "\n\t"))
}

// TestDocsTestCatchesABrokenBlock: a block that does not adapt fails with
// its file and line, and those of the offending line.
func TestDocsTestCatchesABrokenBlock(t *testing.T) {
	md := "# x\n\n<!-- docs-test: route -->\n```caddyfile\nhandle /x* {\n\tlicense_gate {\n\t\tno_such_option 1\n\t}\n}\n```\n"
	blocks, err := parseBlocks("docs/broken.md", md)
	if err != nil || len(blocks) != 1 {
		t.Fatalf("parse: %v %v", blocks, err)
	}
	_, err = adaptDocBlock(t, blocks[0])
	if err == nil || !strings.Contains(err.Error(), "docs/broken.md:4:") || !strings.Contains(err.Error(), "docs/broken.md:7") {
		t.Fatalf("want an error at docs/broken.md:4 naming line 7, got %v", err)
	}
	for _, bad := range []string{
		"```sh\nls\n```\n", // a shell block without a marker
		"<!-- docs-test: skip -->\n```caddyfile\n```\n", // a skip without a reason
		"<!-- docs-test: route -->\ntext\n```caddyfile\n```\n",
		"```\nproduct x {\n}\n```\n", // a Caddyfile not labelled as one
	} {
		blocks, err := parseBlocks("docs/bad.md", bad)
		if err == nil {
			for _, b := range blocks {
				if err = checkMarker(b); err != nil {
					break
				}
			}
		}
		if err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// jsonSubset lists where doc is not part of got: every member of a doc
// object must be in got with the same value; arrays must have the same
// length. A product's "mappings" is compared only when got has it.
func jsonSubset(doc, got any, path string) []string {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: an object, adapt wrote %v", path, got)}
		}
		var diffs []string
		for k, v := range d {
			gv, ok := g[k]
			if !ok {
				if k == "mappings" {
					continue // written by its source options before the mappings field
				}
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, jsonSubset(v, gv, path+"."+k)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(d) {
			return []string{fmt.Sprintf("%s: %v, adapt wrote %v", path, doc, got)}
		}
		var diffs []string
		for i := range d {
			diffs = append(diffs, jsonSubset(d[i], g[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return diffs
	}
	if !reflect.DeepEqual(doc, got) {
		return []string{fmt.Sprintf("%s: %v, adapt wrote %v", path, doc, got)}
	}
	return nil
}

// jsonLike lists where got differs from a documented answer: the same
// members at every level, equal values, and "…" in a documented string
// standing for any text.
func jsonLike(doc, got any, path string) []string {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: an object, got %v", path, got)}
		}
		var diffs []string
		for k, v := range d {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: documented, not answered", path, k))
				continue
			}
			diffs = append(diffs, jsonLike(v, gv, path+"."+k)...)
		}
		for k, v := range g {
			if _, ok := d[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: answered (%v), not documented", path, k, v))
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(d) {
			return []string{fmt.Sprintf("%s: %v, got %v", path, doc, got)}
		}
		var diffs []string
		for i := range d {
			diffs = append(diffs, jsonLike(d[i], g[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return diffs
	case string:
		if before, after, ok := strings.Cut(d, "…"); ok {
			if g, isStr := got.(string); isStr && strings.HasPrefix(g, before) && strings.HasSuffix(g[len(before):], after) {
				return nil
			}
			return []string{fmt.Sprintf("%s: %q, got %v", path, d, got)}
		}
	}
	if !reflect.DeepEqual(doc, got) {
		return []string{fmt.Sprintf("%s: %v, got %v", path, doc, got)}
	}
	return nil
}

// quickStart is the README's command 1 (`licensegate run --config
// Caddyfile.example`) with its fixed ports moved to free ones: run from the
// repository root, so examples/keys.csv is found, with Caddy's data
// directory (the embedded store, its generated secret) in a temporary
// directory.
type quickStart struct {
	*gateway
	base string // the walk-through's http://localhost:8080, moved
}

// startQuickStart runs the binary on Caddyfile.example and waits until
// its installer API answers.
func startQuickStart(t *testing.T) *quickStart {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, dir: t.TempDir(), port: freePort(t), admin: freePort(t)}
	upstream := freePort(t)
	cfg := string(raw)
	for _, r := range []struct {
		from string
		to   int
		min  int
	}{{"localhost:2019", g.admin, 1}, {"localhost:8080", g.port, 1}, {"localhost:9001", upstream, 2}} {
		if n := strings.Count(cfg, r.from); n < r.min {
			t.Fatalf("Caddyfile.example has %s %d times, the docs test expects at least %d: update docs_test.go with the quick start", r.from, n, r.min)
		}
		cfg = strings.ReplaceAll(cfg, r.from, fmt.Sprintf("localhost:%d", r.to))
	}
	// Caddy's debug logging on, in its own global options block, so the
	// log scan sees every line.
	if !strings.Contains(cfg, "\n{\n") {
		t.Fatal("Caddyfile.example has no global options block")
	}
	cfg = strings.Replace(cfg, "\n{\n", "\n{\n\tdebug\n", 1)
	path := filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.launch(path, repoRoot())
	t.Cleanup(g.stop)
	q := &quickStart{gateway: g, base: fmt.Sprintf("http://localhost:%d", g.port)}
	g.await(q.base+"/v1/licenses/jwks.json", http.StatusOK)
	return q
}

// noteDemoKeys adds examples/keys.csv's keys to the log scan's secrets.
func noteDemoKeys(t *testing.T) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(), "examples", "keys.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows[1:] {
		noteSecret(row[0])
	}
}

// needCurl returns curl's path; without curl the walk-through cannot run,
// which skips the test, or fails it where LICENSEGATE_REQUIRE_CURL=1 (CI).
func needCurl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("LICENSEGATE_REQUIRE_CURL") == "1" {
			t.Fatal("curl is not installed (LICENSEGATE_REQUIRE_CURL=1)")
		}
		t.Skip("curl is not installed: the README's walk-through is not run")
	}
	return path
}

// shellCommand is one command of a walk-through block.
type shellCommand struct {
	block   docBlock
	line    int    // the documentation line it starts on
	comment string // the comment lines right above it
	text    string // the command, continuation lines included
	output  string // what it printed, status markers removed
	status  []int  // the HTTP status of each curl it ran
	rc      string // its exit status
}

// parseShellCommands splits a block into commands: a line, with the lines
// a trailing backslash continues it on. A command's comment is the
// comment lines right above it (a blank line ends a comment).
func parseShellCommands(b docBlock) []*shellCommand {
	var cmds []*shellCommand
	var comment []string
	lines := strings.Split(strings.TrimSuffix(b.body, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "":
			comment = nil
		case strings.HasPrefix(l, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		default:
			c := &shellCommand{block: b, line: b.line + 1 + i, comment: strings.Join(comment, " ")}
			text := lines[i]
			for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
				i++
				text += "\n" + lines[i]
			}
			c.text = text
			cmds = append(cmds, c)
			comment = nil
		}
	}
	return cmds
}

func (c *shellCommand) where() string { return fmt.Sprintf("%s:%d", c.block.file, c.line) }

// The walk-through's address, as the README and Caddyfile.example say.
const walkthroughBase = "http://localhost:8080"

var (
	curlWord      = regexp.MustCompile(`(^|[\s(;|&$])curl\s`)
	statusMarker  = regexp.MustCompile(`\n?@@docs-test status=(\d{3})@@\n`)
	commentStatus = regexp.MustCompile(`\b[1-5]\d\d\b`)
	snakeWord     = regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)+\b`)
)

// runWalkthrough runs blocks' commands in order in one sh, so the
// variables one sets are there for the next, and records what each
// printed and the status of each curl (curl -q ignores a ~/.curlrc, -sS
// drops the progress meter, -m bounds a call, and -w writes the status to
// stderr, leaving the command's stdout as documented).
func runWalkthrough(t *testing.T, q *quickStart, blocks []docBlock) []*shellCommand {
	t.Helper()
	needCurl(t)
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString("cd \"$DOCS_TEST_DIR\" || exit 1\n")
	var cmds []*shellCommand
	for _, b := range blocks {
		for _, c := range parseShellCommands(b) {
			i := len(cmds)
			cmds = append(cmds, c)
			text := c.text
			if curlWord.MatchString(text) && !strings.Contains(text, walkthroughBase) {
				t.Errorf("%s: a walk-through curl must call the quick start's %s", c.where(), walkthroughBase)
			}
			text = strings.ReplaceAll(text, walkthroughBase, q.base)
			text = curlWord.ReplaceAllString(text, `${1}curl -q -sS -m 20 -w '%{stderr}\n@@docs-test status=%{http_code}@@\n' `)
			fmt.Fprintf(&script, "{ %s\n} >out.%d 2>&1\necho $? >rc.%d\n", text, i, i)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "sh", "-c", script.String())
	env := []string{"DOCS_TEST_DIR=" + dir, "HOME=" + dir, "NO_PROXY=*", "no_proxy=*"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.Contains(strings.ToLower(k), "proxy") && k != "HOME" {
			env = append(env, kv)
		}
	}
	sh.Env = env
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("running the walk-through: %v\n%s", err, out)
	}
	for i, c := range cmds {
		out, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out.%d", i)))
		rc, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rc.%d", i)))
		c.rc = strings.TrimSpace(string(rc))
		for _, m := range statusMarker.FindAllStringSubmatch(string(out), -1) {
			n, _ := strconv.Atoi(m[1])
			c.status = append(c.status, n)
		}
		c.output = statusMarker.ReplaceAllString(string(out), "")
		var answer any
		for _, l := range strings.Split(c.output, "\n") {
			if json.Unmarshal([]byte(l), &answer) == nil {
				noteSecrets(answer) // the tokens, for the log scan
			}
		}
	}
	return cmds
}

// checkCommand asserts a walk-through command's documented outcome: it
// exits 0; a curl's comment names its status (the status the last curl
// answered must be one of the comment's 3-digit numbers); every error
// code the comment names (a word with an anchor in the README's error
// codes) is in the answer as its "code"; and a problem's type URI points
// at its code's anchor.
func checkCommand(t *testing.T, c *shellCommand, codes map[string]bool) {
	t.Helper()
	if c.rc != "0" {
		t.Errorf("%s: exit status %s:\n%s\n%s", c.where(), c.rc, c.text, c.output)
		return
	}
	var want []int
	for _, s := range commentStatus.FindAllString(c.comment, -1) {
		n, _ := strconv.Atoi(s)
		want = append(want, n)
	}
	switch {
	case len(c.status) > 0 && len(want) == 0:
		t.Errorf("%s: the comment above this curl names no HTTP status to check:\n%s", c.where(), c.text)
	case len(want) > 0 && len(c.status) == 0:
		t.Errorf("%s: the comment names status %v but the command runs no curl", c.where(), want)
	case len(want) > 0 && !slices.Contains(want, c.status[len(c.status)-1]):
		t.Errorf("%s: status %d, the comment says %v (%q):\n%s", c.where(), c.status[len(c.status)-1], want, c.comment, c.output)
	}
	for _, w := range snakeWord.FindAllString(c.comment, -1) {
		if codes[w] && !strings.Contains(c.output, `"code":"`+w+`"`) {
			t.Errorf("%s: the comment names %s, not in the answer:\n%s", c.where(), w, c.output)
		}
	}
	checkProblemTypes(t, c.where(), c.output)
}

var (
	problemType = regexp.MustCompile(`"type":"([^"]+)"`)
	problemCode = regexp.MustCompile(`"code":"([^"]+)"`)
)

// checkProblemTypes: a problem's type URI ends in #error-<its code>, an
// anchor of the page it names (the repository's home page: the README).
func checkProblemTypes(t *testing.T, where, output string) {
	t.Helper()
	typ, code := problemType.FindStringSubmatch(output), problemCode.FindStringSubmatch(output)
	if typ == nil || code == nil {
		return
	}
	u, err := url.Parse(typ[1])
	if err != nil || u.Fragment != "error-"+code[1] {
		t.Errorf("%s: problem type %q does not point at #error-%s", where, typ[1], code[1])
		return
	}
	page := "README.md"
	if _, file, ok := strings.Cut(u.Path, "/blob/"); ok { // .../blob/<branch>/<path>
		if _, p, ok := strings.Cut(file, "/"); ok {
			page = p
		}
	}
	if !docAnchors(readDoc(t, page))[u.Fragment] {
		t.Errorf("%s: problem type %s: %s has no anchor %q", where, typ[1], page, u.Fragment)
	}
}

// docErrorCodes are the codes with an anchor in the README's error codes.
func docErrorCodes(t *testing.T) map[string]bool {
	t.Helper()
	codes := errorAnchors(readDoc(t, "README.md"))
	if len(codes) == 0 {
		t.Fatal("the README has no #error-<code> anchors")
	}
	return codes
}

func blocksOfKind(t *testing.T, file, kind string) []docBlock {
	t.Helper()
	var out []docBlock
	for _, b := range allDocBlocks(t) {
		if b.file == file && b.kind == kind {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no docs-test %s block", file, kind)
	}
	return out
}

// TestDocsWalkthrough runs the README's walk-through against the quick
// start's gateway and checks what each command is documented to show,
// and each output block against what the walk-through block above it
// printed.
func TestDocsWalkthrough(t *testing.T) {
	needCurl(t)
	noteDemoKeys(t)
	codes := docErrorCodes(t)
	q := startQuickStart(t)
	walk := blocksOfKind(t, "README.md", "walkthrough")
	cmds := runWalkthrough(t, q, walk)
	for _, c := range cmds {
		checkCommand(t, c, codes)
		t.Logf("%s: curl statuses %v: %s", c.where(), c.status, strings.SplitN(c.text, "\n", 2)[0])
	}
	// Each output block is the JSON the walk-through block before it printed.
	all := allDocBlocks(t)
	for i, b := range all {
		if b.kind != "output" {
			continue
		}
		var prev *docBlock
		for j := i - 1; j >= 0; j-- {
			if all[j].file == b.file && all[j].kind == "walkthrough" {
				prev = &all[j]
				break
			}
		}
		if prev == nil || b.file != "README.md" {
			t.Errorf("%s: an output block needs a walk-through block above it in the README", b.where())
			continue
		}
		var printed []string
		for _, c := range cmds {
			if c.block.line == prev.line && strings.TrimSpace(c.output) != "" {
				printed = append(printed, strings.TrimSpace(c.output))
			}
		}
		var doc, got any
		if err := json.Unmarshal([]byte(b.body), &doc); err != nil {
			t.Errorf("%s: not JSON: %v", b.where(), err)
			continue
		}
		if len(printed) != 1 || json.Unmarshal([]byte(printed[0]), &got) != nil {
			t.Errorf("%s: the walk-through block at %s printed %q, not one JSON value", b.where(), prev.where(), printed)
			continue
		}
		for _, d := range jsonLike(doc, got, "") {
			t.Errorf("%s: %s", b.where(), d)
		}
	}
	if t.Failed() {
		for _, c := range cmds {
			t.Logf("%s: $ %s\n%s", c.where(), c.text, c.output)
		}
	}
}

// cliStep is one `$ licensegate ...` command of a transcript and the
// lines documented as its output.
type cliStep struct {
	line    int
	command string
	want    []string
}

func parseTranscript(b docBlock) ([]cliStep, error) {
	var steps []cliStep
	for i, l := range strings.Split(strings.TrimSuffix(b.body, "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(l, "$ "); ok {
			if !strings.HasPrefix(cmd, "licensegate ") {
				return nil, fmt.Errorf("%s:%d: a cli transcript runs licensegate commands only: %s", b.file, b.line+1+i, cmd)
			}
			steps = append(steps, cliStep{line: b.line + 1 + i, command: cmd})
			continue
		}
		if len(steps) == 0 {
			return nil, fmt.Errorf("%s:%d: output before the first $ command", b.file, b.line+1+i)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
	}
	return steps, nil
}

var (
	idWord    = regexp.MustCompile(`\b(?:lic|ins)_[0-9a-f]{8,}\b`)
	kidWord   = regexp.MustCompile(`\b\d{8}T\d{6}Z-[A-Za-z0-9_-]+`)
	timeWord  = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})`)
	anyIDWord = regexp.MustCompile(`\b(lic|ins)_[0-9a-f]{8,}\b`)
)

// normLine makes a transcript line comparable: ids, key ids and the times
// of this run (any time with a fraction of a second, or within 40 days of
// now) become placeholders, and runs of blanks one space.
func normLine(l string) string {
	l = anyIDWord.ReplaceAllString(l, "${1}_<id>")
	l = kidWord.ReplaceAllString(l, "<kid>")
	l = timeWord.ReplaceAllStringFunc(l, func(s string) string {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if strings.Contains(s, ".") || (err == nil && time.Since(ts).Abs() < 40*24*time.Hour) {
			return "<time>"
		}
		return s
	})
	return strings.Join(strings.Fields(l), " ")
}

// matchTranscript matches printed lines against documented ones, blank
// lines aside: the documented lines split at "..." into runs that must
// appear in order, the first at the start and the last at the end unless
// "..." opens or closes the documentation. It returns the pairs of
// matched lines (documented, printed), or false.
func matchTranscript(doc, got []string) ([][2]string, bool) {
	var d, g []string
	for _, l := range doc {
		if strings.TrimSpace(l) != "" {
			d = append(d, l)
		}
	}
	for _, l := range got {
		if strings.TrimSpace(l) != "" {
			g = append(g, l)
		}
	}
	var runs [][]string
	cur := []string{}
	for _, l := range d {
		if strings.TrimSpace(l) == "..." {
			runs = append(runs, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, l)
	}
	runs = append(runs, cur)
	at := func(run []string, p int) bool {
		if p < 0 || p+len(run) > len(g) {
			return false
		}
		for i, l := range run {
			if normLine(l) != normLine(g[p+i]) {
				return false
			}
		}
		return true
	}
	var pairs [][2]string
	p := 0
	for i, run := range runs {
		first, last := i == 0, i == len(runs)-1
		if len(run) == 0 {
			if first && last && len(g) > 0 {
				return nil, false // nothing documented, something printed
			}
			continue
		}
		found := -1
		switch {
		case first && last:
			if len(run) == len(g) && at(run, 0) {
				found = 0
			}
		case first:
			if at(run, 0) {
				found = 0
			}
		case last:
			if at(run, len(g)-len(run)) && len(g)-len(run) >= p {
				found = len(g) - len(run)
			}
		default:
			for q := p; q+len(run) <= len(g); q++ {
				if at(run, q) {
					found = q
					break
				}
			}
		}
		if found < 0 {
			return nil, false
		}
		for k, l := range run {
			pairs = append(pairs, [2]string{l, g[found+k]})
		}
		p = found + len(run)
	}
	return pairs, true
}

// TestDocsCLITranscript runs docs/admin.md's transcript against a fresh
// quick-start gateway on which the README's first walk-through block has
// run (the demo key activated for acme.com). Each command is run by sh,
// with --address naming the gateway's admin endpoint, and the ids the
// documentation shows replaced by the ones they stand for here (learnt
// from the lines matched so far). Its output must be the documented one,
// line by line, ids, key ids and this run's times aside, where "..."
// stands for any lines.
func TestDocsCLITranscript(t *testing.T) {
	needCurl(t)
	noteDemoKeys(t)
	codes := docErrorCodes(t)
	q := startQuickStart(t)
	for _, c := range runWalkthrough(t, q, blocksOfKind(t, "README.md", "walkthrough")[:1]) {
		checkCommand(t, c, codes)
	}
	if t.Failed() {
		t.FailNow()
	}
	ids := map[string]string{} // documented id -> this run's
	for _, b := range blocksOfKind(t, "docs/admin.md", "cli") {
		steps, err := parseTranscript(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			where := fmt.Sprintf("%s:%d", b.file, s.line)
			args := strings.TrimPrefix(s.command, "licensegate ")
			missing := ""
			args = idWord.ReplaceAllStringFunc(args, func(id string) string {
				if real, ok := ids[id]; ok {
					return real
				}
				missing = id
				return id
			})
			if missing != "" {
				t.Fatalf("%s: %s: no output above shows what %s stands for", where, s.command, missing)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, "sh", "-c", `"$LICENSEGATE" `+args+` --address "$ADMIN"`)
			cmd.Env = append(q.env(), "LICENSEGATE="+binary, fmt.Sprintf("ADMIN=127.0.0.1:%d", q.admin))
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("%s: %s: %v\n%s", where, s.command, err, out)
			}
			got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			pairs, ok := matchTranscript(s.want, got)
			if ok {
				t.Logf("%s: %s: %d lines as documented", where, s.command, len(pairs))
			} else {
				t.Errorf("%s: `%s` printed other lines than documented (ids and times aside; \"...\" is any lines)\n%s",
					where, s.command, transcriptDiff(s.want, got))
				// Learn the ids of the lines that do match, so that the
				// next commands still run.
				pairs = nil
				for _, d := range s.want {
					for _, g := range got {
						if idWord.MatchString(d) && normLine(d) == normLine(g) {
							pairs = append(pairs, [2]string{d, g})
							break
						}
					}
				}
			}
			for _, p := range pairs {
				docIDs, gotIDs := idWord.FindAllString(p[0], -1), idWord.FindAllString(p[1], -1)
				for k := range min(len(docIDs), len(gotIDs)) {
					if prev, ok := ids[docIDs[k]]; ok && prev != gotIDs[k] {
						t.Errorf("%s: %s stands for %s and %s", where, docIDs[k], prev, gotIDs[k])
					}
					ids[docIDs[k]] = gotIDs[k]
				}
			}
		}
	}
}

// transcriptDiff shows a command's documented and printed lines,
// normalised, and the lines one has that the other has not.
func transcriptDiff(doc, got []string) string {
	norm := func(ls []string) (lines []string, set map[string]bool) {
		set = map[string]bool{}
		for _, l := range ls {
			if strings.TrimSpace(l) != "" {
				lines = append(lines, "\t"+normLine(l))
				set[normLine(l)] = true
			}
		}
		return lines, set
	}
	d, dset := norm(doc)
	g, gset := norm(got)
	var notPrinted, notDocumented []string
	for _, l := range d {
		if l := strings.TrimPrefix(l, "\t"); l != "..." && !gset[l] {
			notPrinted = append(notPrinted, "\t"+l)
		}
	}
	if !dset["..."] {
		for _, l := range g {
			if !dset[strings.TrimPrefix(l, "\t")] {
				notDocumented = append(notDocumented, l)
			}
		}
	}
	return fmt.Sprintf("documented, not printed:\n%s\nprinted, not documented:\n%s\ndocumented:\n%s\nprinted:\n%s",
		strings.Join(notPrinted, "\n"), strings.Join(notDocumented, "\n"), strings.Join(d, "\n"), strings.Join(g, "\n"))
}

// TestDocsLinks: every relative link of the README, docs/ and the PHP
// client's README names a file that exists, and an anchor it has; every
// docs/ page is in the README's contents; and the README's error codes
// are the installer API page's.
func TestDocsLinks(t *testing.T) {
	files := append(docFiles(t), "clients/php/README.md")
	for _, f := range files {
		links, lines := docLinks(readDoc(t, f))
		for i, link := range links {
			target, frag, _ := strings.Cut(link, "#")
			page := f
			if target != "" {
				page = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(f), target)))
				if _, err := os.Stat(filepath.Join(repoRoot(), filepath.FromSlash(page))); err != nil {
					t.Errorf("%s:%d: link %s: no such file", f, lines[i], link)
					continue
				}
			}
			if frag != "" {
				if !strings.HasSuffix(page, ".md") {
					t.Errorf("%s:%d: link %s: an anchor into a file that is not Markdown", f, lines[i], link)
				} else if !docAnchors(readDoc(t, page))[frag] {
					t.Errorf("%s:%d: link %s: %s has no anchor %q", f, lines[i], link, page, frag)
				}
			}
		}
	}
	readme := readDoc(t, "README.md")
	toc := readme[strings.Index(readme, "## Documentation"):]
	toc = toc[:strings.Index(toc[3:], "\n## ")+3]
	for _, f := range docFiles(t)[1:] {
		if !strings.Contains(toc, "]("+f+")") {
			t.Errorf("README.md's Documentation section does not link %s", f)
		}
	}
	pageCodes := errorAnchors(readDoc(t, "docs/installer-api.md"))
	if codes := docErrorCodes(t); !reflect.DeepEqual(codes, pageCodes) {
		t.Errorf("error codes: the README has %v, docs/installer-api.md %v", sortedKeys(codes), sortedKeys(pageCodes))
	}
}

// errorAnchors are the codes of a text's <a id="error-<code>"> anchors.
func errorAnchors(text string) map[string]bool {
	codes := map[string]bool{}
	for _, m := range idPattern.FindAllStringSubmatch(text, -1) {
		if c, ok := strings.CutPrefix(m[1], "error-"); ok {
			codes[c] = true
		}
	}
	return codes
}

func sortedKeys(m map[string]bool) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

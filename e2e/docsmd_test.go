package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// Markdown helpers of the docs test (docs_test.go): fenced blocks with
// their markers, links and anchors.

// docBlock is one fenced block of a Markdown file.
type docBlock struct {
	file   string // relative to the repository root, slash-separated
	line   int    // line of the opening fence, 1-based
	lang   string // the fence's info string, lower case ("" when none)
	kind   string // the docs-test marker's kind ("" when none)
	reason string // the marker's text after the kind
	body   string
}

func (b docBlock) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// markerPattern is a docs-test marker: an HTML comment on its own line,
// before a fenced block with only blank lines between.
var markerPattern = regexp.MustCompile(`^<!--\s*docs-test:\s*([a-z-]+)\s*(.*?)\s*-->\s*$`)

// docFiles lists the documentation the docs test reads: the README and
// every page under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot(), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no docs/*.md pages")
	}
	files := []string{"README.md"}
	for _, p := range pages {
		files = append(files, "docs/"+filepath.Base(p))
	}
	slices.Sort(files[1:])
	return files
}

func readDoc(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// parseBlocks returns the fenced blocks of a Markdown text with their
// markers. A marker that is not followed by a fenced block, or a fence
// left open, is an error.
func parseBlocks(file, text string) ([]docBlock, error) {
	lines := strings.Split(text, "\n")
	var blocks []docBlock
	var marker *docBlock // pending marker, with the line it is on
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := markerPattern.FindStringSubmatch(l); m != nil {
			if marker != nil {
				return nil, fmt.Errorf("%s:%d: docs-test marker not followed by a fenced block", file, marker.line)
			}
			marker = &docBlock{line: i + 1, kind: m[1], reason: m[2]}
			continue
		}
		if strings.HasPrefix(l, "```") {
			b := docBlock{file: file, line: i + 1, lang: strings.ToLower(strings.TrimSpace(strings.TrimPrefix(l, "```")))}
			if marker != nil {
				b.kind, b.reason = marker.kind, marker.reason
				marker = nil
			}
			var body []string
			closed := false
			for i++; i < len(lines); i++ {
				if strings.TrimRight(lines[i], " \t") == "```" {
					closed = true
					break
				}
				body = append(body, lines[i])
			}
			if !closed {
				return nil, fmt.Errorf("%s: fence left open", b.where())
			}
			b.body = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, b)
			continue
		}
		if marker != nil && strings.TrimSpace(l) != "" {
			return nil, fmt.Errorf("%s:%d: docs-test marker not directly before a fenced block", file, marker.line)
		}
	}
	if marker != nil {
		return nil, fmt.Errorf("%s:%d: docs-test marker not followed by a fenced block", file, marker.line)
	}
	return blocks, nil
}

// allDocBlocks parses every documentation file.
func allDocBlocks(t *testing.T) []docBlock {
	t.Helper()
	var all []docBlock
	for _, f := range docFiles(t) {
		blocks, err := parseBlocks(f, readDoc(t, f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blocks...)
	}
	return all
}

// Block languages.
var (
	caddyfileLangs = []string{"caddyfile", "caddy"}
	shellLangs     = []string{"sh", "bash", "shell", "console"}
)

// caddyfileLooking matches a line that opens a Caddyfile block with a
// directive or licensegate option: such a block must be labelled
// caddyfile, so that it is adapted.
var caddyfileLooking = regexp.MustCompile(`(?m)^\s*(licensegate|license_gate|license_exchange|reverse_proxy|handle|route|product|source|storage|webhook|servers|events)(\s[^\n]*)?\{\s*$`)

// checkMarker reports a marker that does not fit its block, and a block
// that needs one: the rules of docs_test.go.
func checkMarker(b docBlock) error {
	switch {
	case slices.Contains(caddyfileLangs, b.lang):
		switch b.kind {
		case "", "route", "app":
			return nil
		case "skip":
			if b.reason == "" {
				return fmt.Errorf("%s: docs-test skip needs a reason", b.where())
			}
			return nil
		}
	case slices.Contains(shellLangs, b.lang):
		switch b.kind {
		case "walkthrough":
			if b.file == "README.md" && b.lang != "console" {
				return nil
			}
		case "cli":
			if b.lang == "console" {
				return nil
			}
		case "skip":
			if b.reason == "" {
				return fmt.Errorf("%s: docs-test skip needs a reason", b.where())
			}
			return nil
		case "":
			return fmt.Errorf("%s: a ```%s block needs a marker before it: <!-- docs-test: walkthrough|cli|skip <reason> -->", b.where(), b.lang)
		}
	case b.lang == "json":
		switch b.kind {
		case "", "output", "json-subset":
			return nil
		}
	default:
		if b.kind == "" {
			if caddyfileLooking.MatchString(b.body) {
				return fmt.Errorf("%s: this ```%s block looks like a Caddyfile: label it ```caddyfile (it is then adapted)", b.where(), b.lang)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: docs-test marker %q does not apply to a ```%s block", b.where(), b.kind, b.lang)
}

// linkPattern is an inline Markdown link's target.
var linkPattern = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// idPattern is an HTML anchor in Markdown.
var idPattern = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)

// docLinks returns the relative links of a Markdown text outside fenced
// blocks, each with its line.
func docLinks(text string) (links []string, lines []int) {
	inFence := false
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		// Code spans hold no links.
		l = regexp.MustCompile("`[^`]*`").ReplaceAllString(l, "")
		for _, m := range linkPattern.FindAllStringSubmatch(l, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links = append(links, target)
			lines = append(lines, i+1)
		}
	}
	return links, lines
}

// docAnchors returns the anchors of a Markdown text as GitHub makes them:
// each heading's slug (numbered when repeated) and every <a id>.
func docAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range idPattern.FindAllStringSubmatch(l, -1) {
			anchors[m[1]] = true
		}
		if !strings.HasPrefix(l, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(l, "#"))
		slug := headingSlug(heading)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// headingSlug is GitHub's anchor for a heading: link text kept, lower
// case, punctuation but hyphens and underscores dropped, spaces to
// hyphens.
func headingSlug(heading string) string {
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

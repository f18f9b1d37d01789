package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// parseSince turns --since into the RFC 3339 time the admin API
// expects: an RFC 3339 time as given, or a duration (caddy.ParseDuration:
// 90m, 24h, 7d) before now. Empty stays empty.
func parseSince(s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	d, err := caddy.ParseDuration(s)
	if err != nil || d <= 0 {
		return "", fmt.Errorf("--since %q: want an RFC 3339 time or a positive duration such as 24h or 7d", s)
	}
	return now.Add(-d).UTC().Format(time.RFC3339), nil
}

// keyOrID classifies a <key-or-id> argument: "lic_..." is a licence id;
// "-" reads a licence key from the first line of standard input; anything
// else is a licence key. A key is remembered so that it is never printed.
func (c *adminCLI) keyOrID(arg string) (id, key string, err error) {
	switch {
	case arg == "-":
		line, err := bufio.NewReader(io.LimitReader(c.in, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("reading licence key from standard input: %w", err)
		}
		key = strings.TrimSpace(line)
	case strings.HasPrefix(arg, "lic_"):
		return arg, "", nil
	default:
		key = arg
	}
	if key == "" {
		return "", "", errors.New("licence key or id is empty")
	}
	c.secret = key
	return "", key, nil
}

// licenseID returns the licence id for a <key-or-id> argument, looking a
// key up first.
func (c *adminCLI) licenseID(arg string) (string, error) {
	id, key, err := c.keyOrID(arg)
	if err != nil || key == "" {
		return id, err
	}
	var ans licenseAnswer
	if _, err := c.lookup(key, &ans); err != nil {
		return "", err
	}
	if id = ans.License.text("id"); id == "" {
		return "", errors.New("licence lookup answered no license.id")
	}
	return id, nil
}

// lookup resolves a licence key with POST /licensegate/licenses/lookup:
// the key travels in the body only.
func (c *adminCLI) lookup(key string, ans *licenseAnswer) ([]byte, error) {
	return c.post(at("licenses", "lookup"), map[string]string{"license_key": key}, ans)
}

// resource is an admin API path below /licensegate/, its parts escaped,
// and its query.
type resource struct {
	parts []string
	query url.Values
}

// at names the resource /licensegate/<parts...>.
func at(parts ...string) resource { return resource{parts: parts} }

// with adds a query parameter when value is not empty.
func (r resource) with(name, value string) resource {
	if value == "" {
		return r
	}
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	q.Set(name, value)
	r.query = q
	return r
}

func (r resource) String() string {
	escaped := make([]string, len(r.parts))
	for i, p := range r.parts {
		escaped[i] = url.PathEscape(p)
	}
	uri := "/licensegate/" + strings.Join(escaped, "/")
	if len(r.query) > 0 {
		uri += "?" + r.query.Encode()
	}
	return uri
}

// get, post and del call the admin API on r (see admin).
func (c *adminCLI) get(r resource, out any) ([]byte, error) {
	return c.admin(http.MethodGet, r.String(), nil, out)
}

func (c *adminCLI) post(r resource, body, out any) ([]byte, error) {
	return c.admin(http.MethodPost, r.String(), body, out)
}

func (c *adminCLI) del(r resource, body, out any) ([]byte, error) {
	return c.admin(http.MethodDelete, r.String(), body, out)
}

// reasonBody is the body of the licence actions and of deactivation.
type reasonBody struct {
	Reason string `json:"reason"`
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (reason: " + printable(reason) + ")"
}

// admin performs one request on the admin API, with body (if not nil)
// encoded as JSON, and decodes the JSON answer into out. It returns the
// answer as read, for --json; an error answer becomes a *adminError
// carrying the admin API's message.
func (c *adminCLI) admin(method, uri string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(c.addr, method, uri, make(http.Header), rd)
	if err != nil {
		return nil, adminErrorFrom(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading admin API answer: %w", err)
	}
	if out == nil {
		out = new(json.RawMessage) // the answer is still checked to be JSON
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding admin API answer to %s %s: %w", method, uri, err)
	}
	return raw, nil
}

// adminError is an error answer of the admin API: Caddy's
// {"error": "..."} and its HTTP status.
type adminError struct {
	Status  int
	Message string
}

func (e *adminError) Error() string { return e.Message }

// adminErrorFrom recovers the admin API's message from the error that
// caddycmd.AdminAPIRequest makes of a 4xx/5xx answer (`caddy responded
// with error: HTTP 404: {"error":"..."}`). Any other error, such as a
// refused connection, is returned as it is.
func adminErrorFrom(err error) error {
	_, rest, ok := strings.Cut(err.Error(), "caddy responded with error: HTTP ")
	if !ok {
		return err
	}
	code, body, _ := strings.Cut(rest, ": ")
	status, convErr := strconv.Atoi(code)
	var answer struct {
		Error string `json:"error"`
	}
	if convErr != nil || json.Unmarshal([]byte(body), &answer) != nil || answer.Error == "" {
		return err
	}
	return &adminError{Status: status, Message: answer.Error}
}

// print writes an answer: with --json the JSON as answered (indented),
// otherwise what table writes, aligned. A licence key given for this run
// is redacted either way.
func (c *adminCLI) print(raw []byte, table func(w io.Writer)) error {
	var buf bytes.Buffer
	if c.flags.Bool("json") {
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("formatting admin API answer: %w", err)
		}
		buf.WriteByte('\n')
	} else {
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		table(tw)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := c.out.Write(c.redact(buf.Bytes()))
	return err
}

func (c *adminCLI) redact(b []byte) []byte {
	if c.secret == "" {
		return b
	}
	return bytes.ReplaceAll(b, []byte(c.secret), []byte("[redacted]"))
}

// redactErr keeps err unless its message holds the licence key.
func (c *adminCLI) redactErr(err error) error {
	if c.secret == "" || !strings.Contains(err.Error(), c.secret) {
		return err
	}
	return errors.New(string(c.redact([]byte(err.Error()))))
}

package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "license",
		Usage: "show|suspend|reinstate|lock|unlock|recheck <key-or-id> [--reason <text>] [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Shows, suspends, reinstates, locks, unlocks or rechecks a licence",
		Long: `
Shows or changes one licence through licensegate's admin API.

The argument is a licence id (lic_...) or a licence key / purchase code.
A key is resolved to its id with POST /licensegate/licenses/lookup; it is
sent only in that request's body and never printed. Give "-" to read the
key from standard input instead, so it stays out of the process list and
the shell history.

suspend, reinstate, lock and unlock take an optional --reason, recorded
in the audit log. recheck asks the licence's source again now, as the
background recheck would, and prints what it answered and what changed.
--json prints the admin API's JSON answer instead of a table.
` + cliAdminHelp,
		CobraFunc: cliLicenseCommand,
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "installation",
		Usage: "deactivate <installation-id> [--reason <text>] [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Deactivates an installation",
		Long: `
Deactivates one installation through licensegate's admin API: its tokens
stop working and its activation slot is freed. --reason is recorded in the
audit log. --json prints the admin API's JSON answer instead of a table.
` + cliAdminHelp,
		CobraFunc: cliInstallationCommand,
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "keys",
		Usage: "rotate [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Rotates the token signing key",
		Long: `
Rotates licensegate's token signing key through the admin API: a new key
signs from now on, older keys stay published in the JWKS until the tokens
they signed have expired. --json prints the admin API's JSON answer.
` + cliAdminHelp,
		CobraFunc: cliKeysCommand,
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "[--since <time|duration>] [--limit <n>] [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Prints licensegate's audit log",
		Long: `
Prints licensegate's audit log, oldest first, following the admin API's
pages until the log is exhausted or --limit events were printed.

--since takes an RFC 3339 time (2026-01-02T15:04:05Z) or a duration
before now (90m, 24h, 7d). --json prints one JSON object with all the
events read and the next_cursor to continue from.
` + cliAdminHelp,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.NoArgs
			cmd.Flags().String("since", "", "Only events at or after this RFC 3339 time or duration before now (24h, 7d)")
			cmd.Flags().Int("limit", 0, "Print at most this many events (0: all)")
			cliAdminFlags(cmd)
			cmd.RunE = cliRunE(cmdAudit)
		},
	})
}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhooks",
		Usage: "[--failed] [--status <status>] | retry <delivery-id> [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Lists webhook deliveries, or retries a failed one",
		Long: `
Lists licensegate's webhook deliveries (the event outbox), oldest first,
through the admin API: --failed (or --status failed|pending|delivered)
lists only those. 'retry <delivery-id>' makes a failed delivery pending
again, due now. --json prints the admin API's JSON answer.
` + cliAdminHelp,
		CobraFunc: cliWebhooksCommand,
	})
}

func cliWebhooksCommand(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.Flags().Bool("failed", false, "List only failed deliveries")
	cmd.Flags().String("status", "", "List only deliveries with this status (pending, delivered, failed)")
	cliAdminFlags(cmd)
	cmd.RunE = cliRunE(cmdWebhooks)
	retry := &cobra.Command{
		Use:   "retry <delivery-id>",
		Short: "Retries a failed webhook delivery",
		Args:  cobra.ExactArgs(1),
		RunE:  cliRunE(cmdWebhooksRetry),
	}
	cliAdminFlags(retry)
	cmd.AddCommand(retry)
}

// cliMaxDeliveries bounds how many deliveries one listing prints.
const cliMaxDeliveries = 10000

func cmdWebhooks(c *adminCLI, _ []string) error {
	status := c.flags.String("status")
	if c.flags.Bool("failed") {
		status = "failed"
	}
	var all []json.RawMessage
	cursor := ""
	for len(all) < cliMaxDeliveries {
		q := url.Values{}
		if status != "" {
			q.Set("status", status)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Deliveries []json.RawMessage `json:"deliveries"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := c.admin(http.MethodGet, "/licensegate/webhooks/deliveries?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Deliveries...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	raw, err := json.Marshal(map[string]any{"deliveries": all})
	if err != nil {
		return fmt.Errorf("encoding deliveries: %w", err)
	}
	return c.print(raw, func(w io.Writer) {
		rows := make([]cliObject, 0, len(all))
		for _, d := range all {
			var e struct {
				ID        string `json:"id"`
				Status    string `json:"status"`
				Attempts  int    `json:"attempts"`
				LastError string `json:"last_error"`
				Event     struct {
					At        string `json:"at"`
					Action    string `json:"action"`
					LicenseID string `json:"license_id"`
				} `json:"event"`
			}
			_ = json.Unmarshal(d, &e)
			o := cliObject{}
			for k, v := range map[string]any{"id": e.ID, "status": e.Status, "attempts": e.Attempts, "type": e.Event.Action,
				"at": e.Event.At, "license_id": e.Event.LicenseID, "last_error": e.LastError} {
				o[k], _ = json.Marshal(v)
			}
			rows = append(rows, o)
		}
		cliWriteTable(w, []string{"ID", "STATUS", "ATTEMPTS", "TYPE", "AT", "LICENSE", "LAST ERROR"},
			[]string{"id", "status", "attempts", "type", "at", "license_id", "last_error"}, rows, "no webhook deliveries")
	})
}

func cmdWebhooksRetry(c *adminCLI, args []string) error {
	raw, err := c.admin(http.MethodPost, "/licensegate/webhooks/deliveries/"+url.PathEscape(args[0])+"/retry", nil, nil)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "delivery %s is pending again\n", cliPrintable(args[0]))
	})
}

// cliAdminHelp ends the help text of every licensegate command.
var cliAdminHelp = `
The command talks to Caddy's admin API at '` + caddy.DefaultAdminListen + `'
unless --address names another listener or --config (and --adapter) names
the config file to read the admin address from, as 'caddy reload' does.`

// cliMaxAnswer bounds an admin API answer the CLI reads.
const cliMaxAnswer = 16 << 20

// cliLicenseActions maps each licence action to the word printed after it.
var cliLicenseActions = []struct{ verb, done, short string }{
	{"suspend", "suspended", "Suspends a licence: every installation stops being served"},
	{"reinstate", "reinstated", "Reinstates a suspended licence"},
	{"lock", "locked", "Locks a licence: no new activations, existing ones keep working"},
	{"unlock", "unlocked", "Unlocks a locked licence"},
}

// cliLicenseFields are the licence fields printed first, in this order;
// any other field of the answer follows in name order.
var cliLicenseFields = []string{
	"id", "status", "locked", "product", "source", "type", "licensed_to",
	"expires_at", "support_until", "next_check_at", "activations_limit",
}

// Table columns: headers and the JSON fields they show.
var (
	cliInstallationHeader  = []string{"ID", "DOMAIN", "CLASS", "STATUS", "CREATED", "LAST SEEN"}
	cliInstallationColumns = []string{"id", "domain", "install_class", "status", "created_at", "last_seen_at"}
	cliAuditHeader         = []string{"AT", "ACTOR", "ACTION", "LICENSE", "INSTALLATION", "REASON"}
	cliAuditColumns        = []string{"at", "actor", "action", "license_id", "installation_id", "reason"}
)

// cliLicenseCommand adds the license subcommands.
func cliLicenseCommand(cmd *cobra.Command) {
	cliGroup(cmd)
	show := &cobra.Command{
		Use:   "show <key-or-id>",
		Short: "Shows a licence and its installations",
		Args:  cobra.ExactArgs(1),
		RunE:  cliRunE(cmdLicenseShow),
	}
	cliAdminFlags(show)
	cmd.AddCommand(show)
	recheck := &cobra.Command{
		Use:   "recheck <key-or-id>",
		Short: "Asks the licence's source again now and prints the outcome",
		Args:  cobra.ExactArgs(1),
		RunE:  cliRunE(cmdLicenseRecheck),
	}
	cliAdminFlags(recheck)
	cmd.AddCommand(recheck)
	for _, a := range cliLicenseActions {
		sub := &cobra.Command{
			Use:   a.verb + " <key-or-id>",
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE:  cliRunE(cmdLicenseAction(a.verb, a.done)),
		}
		sub.Flags().String("reason", "", "Why, for the audit log")
		cliAdminFlags(sub)
		cmd.AddCommand(sub)
	}
}

// cliInstallationCommand adds the installation subcommands.
func cliInstallationCommand(cmd *cobra.Command) {
	cliGroup(cmd)
	deactivate := &cobra.Command{
		Use:   "deactivate <installation-id>",
		Short: "Deactivates an installation",
		Args:  cobra.ExactArgs(1),
		RunE:  cliRunE(cmdInstallationDeactivate),
	}
	deactivate.Flags().String("reason", "", "Why, for the audit log")
	cliAdminFlags(deactivate)
	cmd.AddCommand(deactivate)
}

// cliKeysCommand adds the keys subcommands.
func cliKeysCommand(cmd *cobra.Command) {
	cliGroup(cmd)
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Rotates the token signing key",
		Args:  cobra.NoArgs,
		RunE:  cliRunE(cmdKeysRotate),
	}
	cliAdminFlags(rotate)
	cmd.AddCommand(rotate)
}

// cliGroup makes cmd a group of subcommands: alone it prints its help;
// with an unknown subcommand it fails instead of printing help and
// exiting 0, which is what cobra does for a non-root command group.
func cliGroup(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// cliAdminFlags adds the flags every command shares: where the admin API
// is, like 'caddy reload', and --json.
func cliAdminFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "Address of the administration API listener (if --config is not used)")
	cmd.Flags().StringP("config", "c", "", "Configuration file (if --address is not used)")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply (if --config is used)")
	cmd.Flags().Bool("json", false, "Print the admin API's JSON answer instead of a table")
}

// adminCLI is one run of a licensegate command.
type adminCLI struct {
	flags caddycmd.Flags
	in    io.Reader
	out   io.Writer
	addr  string // admin API address

	// secret is the licence key given for this run, if any: it goes in a
	// request body only and is redacted from anything printed.
	secret string
}

// cliFunc is the body of one command; args were checked by cobra.
type cliFunc func(c *adminCLI, args []string) error

// cliRunE adapts f to cobra: it finds the admin API address, runs f and
// prints a failure as "error: <message>" on stderr, so the process exits
// non-zero.
func cliRunE(f cliFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c := &adminCLI{flags: caddycmd.Flags{FlagSet: cmd.Flags()}, in: cmd.InOrStdin(), out: cmd.OutOrStdout()}
		err := c.findAdmin()
		if err == nil {
			err = f(c, args)
		}
		if err != nil {
			err = c.redactErr(err)
			fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", err)
			cmd.SilenceErrors = true
		}
		return err
	}
}

// findAdmin sets the admin API address the way 'caddy reload' finds it.
func (c *adminCLI) findAdmin() error {
	addr, err := caddycmd.DetermineAdminAPIAddress(c.flags.String("address"), nil, c.flags.String("config"), c.flags.String("adapter"))
	if err != nil {
		return fmt.Errorf("couldn't determine admin API address: %w", err)
	}
	c.addr = addr
	return nil
}

func cmdLicenseShow(c *adminCLI, args []string) error {
	id, key, err := c.keyOrID(args[0])
	if err != nil {
		return err
	}
	var ans cliLicenseAnswer
	var raw []byte
	if key != "" {
		raw, err = c.lookup(key, &ans)
	} else {
		raw, err = c.admin(http.MethodGet, cliLicensePath(id), nil, &ans)
	}
	if err != nil {
		return err
	}
	return c.print(raw, ans.write)
}

// cmdLicenseRecheck POSTs recheck for a licence and prints the outcome,
// then the licence.
func cmdLicenseRecheck(c *adminCLI, args []string) error {
	id, err := c.licenseID(args[0])
	if err != nil {
		return err
	}
	var ans struct {
		cliLicenseAnswer
		Outcome cliObject `json:"outcome"`
	}
	raw, err := c.admin(http.MethodPost, cliLicensePath(id)+"/recheck", struct{}{}, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		line := cliPrintable(id) + " rechecked: " + ans.Outcome.cell("outcome")
		if r := ans.Outcome.text("reason"); r != "" {
			line += " (" + cliPrintable(r) + ")"
		}
		if ev := ans.Outcome.text("event"); ev != "" {
			line += ", " + cliPrintable(ev)
		}
		if ans.Outcome.cell("held") == "true" {
			line += ", held by the mass-suspension guard"
		}
		fmt.Fprintf(w, "%s\n\n", line)
		ans.write(w)
	})
}

// cmdLicenseAction returns the command that POSTs verb for a licence.
func cmdLicenseAction(verb, done string) cliFunc {
	return func(c *adminCLI, args []string) error {
		id, err := c.licenseID(args[0])
		if err != nil {
			return err
		}
		reason := c.flags.String("reason")
		var ans cliLicenseAnswer
		raw, err := c.admin(http.MethodPost, cliLicensePath(id)+"/"+verb, cliReason{reason}, &ans)
		if err != nil {
			return err
		}
		return c.print(raw, func(w io.Writer) {
			fmt.Fprintf(w, "%s %s%s\n\n", cliPrintable(id), done, cliReasonSuffix(reason))
			ans.write(w)
		})
	}
}

func cmdInstallationDeactivate(c *adminCLI, args []string) error {
	id := args[0]
	if id == "" {
		return errors.New("installation id is empty")
	}
	reason := c.flags.String("reason")
	var ans struct {
		Installation cliObject `json:"installation"`
		License      cliObject `json:"license"`
	}
	raw, err := c.admin(http.MethodDelete, "/licensegate/installations/"+url.PathEscape(id), cliReason{reason}, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "%s deactivated%s\n\n", cliPrintable(id), cliReasonSuffix(reason))
		cliWriteTable(w, cliInstallationHeader, cliInstallationColumns, []cliObject{ans.Installation}, "")
		fmt.Fprintln(w)
		cliWriteFields(w, ans.License)
	})
}

func cmdKeysRotate(c *adminCLI, _ []string) error {
	var ans struct {
		Kid  string   `json:"kid"`
		Keys []string `json:"keys"`
	}
	raw, err := c.admin(http.MethodPost, "/licensegate/keys/rotate", nil, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "signing key rotated; current kid: %s\n\nKID\tCURRENT\n", cliPrintable(ans.Kid))
		for _, kid := range ans.Keys {
			current := "-"
			if kid == ans.Kid {
				current = "yes"
			}
			fmt.Fprintf(w, "%s\t%s\n", cliPrintable(kid), current)
		}
	})
}

func cmdAudit(c *adminCLI, _ []string) error {
	since, err := cliParseSince(c.flags.String("since"), time.Now())
	if err != nil {
		return err
	}
	limit := c.flags.Int("limit")
	if limit < 0 {
		return fmt.Errorf("--limit %d: must not be negative", limit)
	}
	page, err := c.auditEvents(since, limit)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(page)
	if err != nil {
		return fmt.Errorf("encoding audit events: %w", err)
	}
	return c.print(raw, func(w io.Writer) {
		rows := make([]cliObject, 0, len(page.Events))
		for _, ev := range page.Events {
			var o cliObject
			_ = json.Unmarshal(ev, &o) // a non-object event shows as a row of "-"
			rows = append(rows, o)
		}
		cliWriteTable(w, cliAuditHeader, cliAuditColumns, rows, "no audit events")
	})
}

// cliAuditPage is one page of GET /licensegate/audit, and what audit
// --json prints: every event read and the cursor to continue from.
type cliAuditPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor"`
}

// auditEvents reads audit pages from since, following next_cursor until it
// is empty or limit (0: none) events were read. Each request asks for the
// events still wanted; if the admin API answers more, the extra ones are
// dropped and the returned cursor skips them.
func (c *adminCLI) auditEvents(since string, limit int) (cliAuditPage, error) {
	all := cliAuditPage{Events: []json.RawMessage{}}
	for {
		q := url.Values{}
		if since != "" {
			q.Set("since", since)
		}
		if all.NextCursor != "" {
			q.Set("cursor", all.NextCursor)
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit-len(all.Events)))
		}
		uri := "/licensegate/audit"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		var page cliAuditPage
		if _, err := c.admin(http.MethodGet, uri, nil, &page); err != nil {
			return cliAuditPage{}, err
		}
		all.Events = append(all.Events, page.Events...)
		if page.NextCursor != "" && page.NextCursor == all.NextCursor {
			return cliAuditPage{}, fmt.Errorf("admin API answered the same audit cursor %q twice", page.NextCursor)
		}
		all.NextCursor = page.NextCursor
		if limit > 0 && len(all.Events) >= limit {
			all.Events = all.Events[:limit]
			return all, nil
		}
		if all.NextCursor == "" {
			return all, nil
		}
	}
}

// cliParseSince turns --since into the RFC 3339 time the admin API
// expects: an RFC 3339 time as given, or a duration (caddy.ParseDuration:
// 90m, 24h, 7d) before now. Empty stays empty.
func cliParseSince(s string, now time.Time) (string, error) {
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
	var ans cliLicenseAnswer
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
func (c *adminCLI) lookup(key string, ans *cliLicenseAnswer) ([]byte, error) {
	return c.admin(http.MethodPost, "/licensegate/licenses/lookup", map[string]string{"license_key": key}, ans)
}

func cliLicensePath(id string) string {
	return "/licensegate/licenses/" + url.PathEscape(id)
}

// cliReason is the body of the licence actions and of deactivation.
type cliReason struct {
	Reason string `json:"reason"`
}

func cliReasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (reason: " + cliPrintable(reason) + ")"
}

// admin performs one request on the admin API, with body (if not nil)
// encoded as JSON, and decodes the JSON answer into out. It returns the
// answer as read, for --json; an error answer becomes a *cliAdminError
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
		return nil, cliAdminErrorFrom(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cliMaxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading admin API answer: %w", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding admin API answer to %s %s: %w", method, uri, err)
	}
	return raw, nil
}

// cliAdminError is an error answer of the admin API: Caddy's
// {"error": "..."} and its HTTP status.
type cliAdminError struct {
	Status  int
	Message string
}

func (e *cliAdminError) Error() string { return e.Message }

// cliAdminErrorFrom recovers the admin API's message from the error that
// caddycmd.AdminAPIRequest makes of a 4xx/5xx answer (`caddy responded
// with error: HTTP 404: {"error":"..."}`). Any other error, such as a
// refused connection, is returned as it is.
func cliAdminErrorFrom(err error) error {
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
	return &cliAdminError{Status: status, Message: answer.Error}
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

// cliLicenseAnswer is the admin API's licence view.
type cliLicenseAnswer struct {
	License       cliObject   `json:"license"`
	Installations []cliObject `json:"installations"`
}

// write prints the licence's fields, then its installations.
func (a cliLicenseAnswer) write(w io.Writer) {
	cliWriteFields(w, a.License)
	fmt.Fprintln(w)
	cliWriteTable(w, cliInstallationHeader, cliInstallationColumns, a.Installations, "no installations")
}

// cliObject is a JSON object of an answer, kept field by field so that a
// table shows every field the admin API sends, including newer ones.
type cliObject map[string]json.RawMessage

// text returns a string field, or "" when it is absent or not a string.
func (o cliObject) text(key string) string {
	var s string
	_ = json.Unmarshal(o[key], &s)
	return s
}

// cell renders a field for a table: a string without quotes, null or
// absent as "-", anything else as compact JSON.
func (o cliObject) cell(key string) string {
	raw, ok := o[key]
	if !ok || string(raw) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			s = buf.String()
		} else {
			s = string(raw)
		}
	}
	return cliPrintable(s)
}

// cliWriteFields prints an object as "field  value" lines: the licence
// fields first, then the others in name order.
func cliWriteFields(w io.Writer, o cliObject) {
	keys := slices.Clone(cliLicenseFields)
	var rest []string
	for k := range o {
		if !slices.Contains(cliLicenseFields, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range append(keys, rest...) {
		fmt.Fprintf(w, "%s\t%s\n", cliPrintable(k), o.cell(k))
	}
}

// cliWriteTable prints rows under header, one column per field of
// columns, or the line empty when there are no rows.
func cliWriteTable(w io.Writer, header, columns []string, rows []cliObject, empty string) {
	if len(rows) == 0 {
		fmt.Fprintln(w, empty)
		return
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	cells := make([]string, len(columns))
	for _, row := range rows {
		for i, col := range columns {
			cells[i] = row.cell(col)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
}

// cliPrintable makes a value from the admin API safe for a table on a
// terminal: control characters (tabs, newlines, escape sequences, which
// an installer could put in a domain or label) become "?"; empty is "-".
func cliPrintable(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

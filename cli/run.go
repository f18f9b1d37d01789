package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

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

// action is the body of one command; args were checked by cobra.
type action func(c *adminCLI, args []string) error

// runE adapts f to cobra: it finds the admin API address, runs f and
// prints a failure as "error: <message>" on stderr, so the process exits
// non-zero.
func runE(f action) func(*cobra.Command, []string) error {
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
	var ans licenseAnswer
	var raw []byte
	if key != "" {
		raw, err = c.lookup(key, &ans)
	} else {
		raw, err = c.get(at("licenses", id), &ans)
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
		licenseAnswer
		Outcome object `json:"outcome"`
	}
	raw, err := c.post(at("licenses", id, "recheck"), struct{}{}, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		line := printable(id) + " rechecked: " + ans.Outcome.cell("outcome")
		if r := ans.Outcome.text("reason"); r != "" {
			line += " (" + printable(r) + ")"
		}
		if ev := ans.Outcome.text("event"); ev != "" {
			line += ", " + printable(ev)
		}
		if ans.Outcome.cell("held") == "true" {
			line += ", held by the mass-suspension guard"
		}
		fmt.Fprintf(w, "%s\n\n", line)
		ans.write(w)
	})
}

// cmdLicenseAction returns the command that POSTs verb for a licence.
func cmdLicenseAction(verb, done string) action {
	return func(c *adminCLI, args []string) error {
		id, err := c.licenseID(args[0])
		if err != nil {
			return err
		}
		reason := c.flags.String("reason")
		var ans licenseAnswer
		raw, err := c.post(at("licenses", id, verb), reasonBody{reason}, &ans)
		if err != nil {
			return err
		}
		return c.print(raw, func(w io.Writer) {
			fmt.Fprintf(w, "%s %s%s\n\n", printable(id), done, reasonSuffix(reason))
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
		Installation object `json:"installation"`
		License      object `json:"license"`
	}
	raw, err := c.del(at("installations", id), reasonBody{reason}, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "%s deactivated%s\n\n", printable(id), reasonSuffix(reason))
		writeTable(w, installationHeader, installationColumns, []object{ans.Installation}, "")
		fmt.Fprintln(w)
		writeFields(w, ans.License)
	})
}

func cmdKeysRotate(c *adminCLI, _ []string) error {
	var ans struct {
		Kid  string   `json:"kid"`
		Keys []string `json:"keys"`
	}
	raw, err := c.post(at("keys", "rotate"), nil, &ans)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "signing key rotated; current kid: %s\n\nKID\tCURRENT\n", printable(ans.Kid))
		for _, kid := range ans.Keys {
			current := "-"
			if kid == ans.Kid {
				current = "yes"
			}
			fmt.Fprintf(w, "%s\t%s\n", printable(kid), current)
		}
	})
}

func cmdAudit(c *adminCLI, _ []string) error {
	since, err := parseSince(c.flags.String("since"), time.Now())
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
		rows := make([]object, 0, len(page.Events))
		for _, ev := range page.Events {
			var o object
			_ = json.Unmarshal(ev, &o) // a non-object event shows as a row of "-"
			rows = append(rows, o)
		}
		writeTable(w, auditHeader, auditColumns, rows, "no audit events")
	})
}

// auditPage is one page of GET /licensegate/audit, and what audit
// --json prints: every event read and the cursor to continue from.
type auditPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor"`
}

// auditEvents reads audit pages from since, following next_cursor until it
// is empty or limit (0: none) events were read. Each request asks for the
// events still wanted; if the admin API answers more, the extra ones are
// dropped and the returned cursor skips them.
func (c *adminCLI) auditEvents(since string, limit int) (auditPage, error) {
	all := auditPage{Events: []json.RawMessage{}}
	for {
		r := at("audit").with("since", since).with("cursor", all.NextCursor)
		if limit > 0 {
			r = r.with("limit", strconv.Itoa(limit-len(all.Events)))
		}
		var page auditPage
		if _, err := c.get(r, &page); err != nil {
			return auditPage{}, err
		}
		all.Events = append(all.Events, page.Events...)
		if page.NextCursor != "" && page.NextCursor == all.NextCursor {
			return auditPage{}, fmt.Errorf("admin API answered the same audit cursor %q twice", page.NextCursor)
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

// maxDeliveries bounds how many deliveries one listing prints.
const maxDeliveries = 10000

func cmdWebhooks(c *adminCLI, _ []string) error {
	status := c.flags.String("status")
	if c.flags.Bool("failed") {
		status = "failed"
	}
	var all []json.RawMessage
	cursor := ""
	for len(all) < maxDeliveries {
		var page struct {
			Deliveries []json.RawMessage `json:"deliveries"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := c.get(at("webhooks", "deliveries").with("status", status).with("cursor", cursor), &page); err != nil {
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
		rows := make([]object, 0, len(all))
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
			o := object{}
			for k, v := range map[string]any{"id": e.ID, "status": e.Status, "attempts": e.Attempts, "type": e.Event.Action,
				"at": e.Event.At, "license_id": e.Event.LicenseID, "last_error": e.LastError} {
				o[k], _ = json.Marshal(v)
			}
			rows = append(rows, o)
		}
		writeTable(w, []string{"ID", "STATUS", "ATTEMPTS", "TYPE", "AT", "LICENSE", "LAST ERROR"},
			[]string{"id", "status", "attempts", "type", "at", "license_id", "last_error"}, rows, "no webhook deliveries")
	})
}

func cmdWebhooksRetry(c *adminCLI, args []string) error {
	raw, err := c.post(at("webhooks", "deliveries", args[0], "retry"), nil, nil)
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintf(w, "delivery %s is pending again\n", printable(args[0]))
	})
}

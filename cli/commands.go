package cli

import (
	"strings"

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
` + adminHelp,
		CobraFunc: licenseCommand,
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "installation",
		Usage: "deactivate <installation-id> [--reason <text>] [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Deactivates an installation",
		Long: `
Deactivates one installation through licensegate's admin API: its tokens
stop working and its activation slot is freed. --reason is recorded in the
audit log. --json prints the admin API's JSON answer instead of a table.
` + adminHelp,
		CobraFunc: installationCommand,
	})

	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "keys",
		Usage: "rotate [--json] [--address <listen>] [--config <path> [--adapter <name>]]",
		Short: "Rotates the token signing key",
		Long: `
Rotates licensegate's token signing key through the admin API: a new key
signs from now on, older keys stay published in the JWKS until the tokens
they signed have expired. --json prints the admin API's JSON answer.
` + adminHelp,
		CobraFunc: keysCommand,
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
` + adminHelp,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Args = cobra.NoArgs
			cmd.Flags().String("since", "", "Only events at or after this RFC 3339 time or duration before now (24h, 7d)")
			cmd.Flags().Int("limit", 0, "Print at most this many events (0: all)")
			adminFlags(cmd)
			cmd.RunE = runE(cmdAudit)
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
` + adminHelp,
		CobraFunc: webhooksCommand,
	})
}

func webhooksCommand(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.Flags().Bool("failed", false, "List only failed deliveries")
	cmd.Flags().String("status", "", "List only deliveries with this status (pending, delivered, failed)")
	adminFlags(cmd)
	cmd.RunE = runE(cmdWebhooks)
	cmd.AddCommand(subcommand("retry <delivery-id>", "Retries a failed webhook delivery", cmdWebhooksRetry, false))
}

// adminHelp ends the help text of every licensegate command.
var adminHelp = `
The command talks to Caddy's admin API at '` + caddy.DefaultAdminListen + `'
unless --address names another listener or --config (and --adapter) names
the config file to read the admin address from, as 'caddy reload' does.`

// maxAnswer bounds an admin API answer the CLI reads.
const maxAnswer = 16 << 20

// licenseActions maps each licence action to the word printed after it.
var licenseActions = []struct{ verb, done, short string }{
	{"suspend", "suspended", "Suspends a licence: every installation stops being served"},
	{"reinstate", "reinstated", "Reinstates a suspended licence"},
	{"lock", "locked", "Locks a licence: no new activations, existing ones keep working"},
	{"unlock", "unlocked", "Unlocks a locked licence"},
}

// licenseFields are the licence fields printed first, in this order;
// any other field of the answer follows in name order.
var licenseFields = []string{
	"id", "status", "locked", "product", "source", "type", "licensed_to",
	"expires_at", "support_until", "next_check_at", "activations_limit",
}

// Table columns: headers and the JSON fields they show.
var (
	installationHeader  = []string{"ID", "DOMAIN", "CLASS", "STATUS", "CREATED", "LAST SEEN"}
	installationColumns = []string{"id", "domain", "install_class", "status", "created_at", "last_seen_at"}
	auditHeader         = []string{"AT", "ACTOR", "ACTION", "LICENSE", "INSTALLATION", "REASON"}
	auditColumns        = []string{"at", "actor", "action", "license_id", "installation_id", "reason"}
)

// licenseCommand adds the license subcommands.
func licenseCommand(cmd *cobra.Command) {
	group(cmd)
	cmd.AddCommand(subcommand("show <key-or-id>", "Shows a licence and its installations", cmdLicenseShow, false))
	cmd.AddCommand(subcommand("recheck <key-or-id>", "Asks the licence's source again now and prints the outcome", cmdLicenseRecheck, false))
	for _, a := range licenseActions {
		cmd.AddCommand(subcommand(a.verb+" <key-or-id>", a.short, cmdLicenseAction(a.verb, a.done), true))
	}
}

// installationCommand adds the installation subcommands.
func installationCommand(cmd *cobra.Command) {
	group(cmd)
	cmd.AddCommand(subcommand("deactivate <installation-id>", "Deactivates an installation", cmdInstallationDeactivate, true))
}

// keysCommand adds the keys subcommands.
func keysCommand(cmd *cobra.Command) {
	group(cmd)
	cmd.AddCommand(subcommand("rotate", "Rotates the token signing key", cmdKeysRotate, false))
}

// subcommand is a subcommand with the admin flags: use names it and
// its one argument, if any ("show <key-or-id>"); reason adds --reason.
func subcommand(use, short string, run action, reason bool) *cobra.Command {
	args := cobra.NoArgs
	if strings.Contains(use, " <") {
		args = cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: args, RunE: runE(run)}
	if reason {
		cmd.Flags().String("reason", "", "Why, for the audit log")
	}
	adminFlags(cmd)
	return cmd
}

// group makes cmd a group of subcommands: alone it prints its help;
// with an unknown subcommand it fails instead of printing help and
// exiting 0, which is what cobra does for a non-root command group.
func group(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// adminFlags adds the flags every command shares: where the admin API
// is, like 'caddy reload', and --json.
func adminFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "Address of the administration API listener (if --config is not used)")
	cmd.Flags().StringP("config", "c", "", "Configuration file (if --address is not used)")
	cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply (if --config is used)")
	cmd.Flags().Bool("json", false, "Print the admin API's JSON answer instead of a table")
}

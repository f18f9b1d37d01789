package store

import (
	"context"
	"errors"
	"time"
)

// Audit actions.
const (
	AuditInstallationCreated     = "installation.created"
	AuditInstallationDeactivated = "installation.deactivated"
	AuditInstallationMoved       = "installation.moved"
	AuditInstallationReactivated = "installation.reactivated"
	AuditInstallationCloned      = "installation.cloned"
	AuditLicenseSuspended        = "license.suspended"
	AuditLicenseReinstated       = "license.reinstated"
	AuditLicenseLocked           = "license.locked"
	AuditLicenseUnlocked         = "license.unlocked"
	AuditKeysRotated             = "keys.rotated"
	AuditInstallationReleased    = "installation.released"
	AuditLicenseFlagged          = "license.flagged"
	AuditLicenseExpired          = "license.expired"
	AuditLicenseRenewed          = "license.renewed"
	AuditRecheckGuardTripped     = "recheck.guard_tripped"
	AuditSourceCredentialFailing = "source.credential_failing"
	AuditSourceWebhookRefused    = "source.webhook_refused"
	AuditAddonAttached           = "addon.attached"
	AuditAddonDetached           = "addon.detached"
	// AuditInstallationStaging is a buyer marking their installation a
	// staging copy (the portal).
	AuditInstallationStaging = "installation.marked_staging"
	// AuditRecheckRequested is an author asking for a licence's recheck
	// now (the console): who asked, and why. What the source answered is
	// the recheck's own event, if it changed anything.
	AuditRecheckRequested = "license.recheck_requested"
)

// AuditActions lists every audited action, which is every event type
// (SPEC section 10), in the order the SPEC names them.
var AuditActions = []string{
	AuditInstallationCreated, AuditInstallationReactivated, AuditInstallationMoved,
	AuditInstallationDeactivated, AuditInstallationReleased, AuditInstallationCloned,
	AuditAddonAttached, AuditAddonDetached, AuditInstallationStaging,
	AuditLicenseFlagged, AuditLicenseSuspended, AuditLicenseReinstated, AuditLicenseLocked,
	AuditLicenseUnlocked, AuditLicenseExpired, AuditLicenseRenewed, AuditRecheckRequested,
	AuditRecheckGuardTripped, AuditSourceCredentialFailing, AuditSourceWebhookRefused, AuditKeysRotated,
}

// AuditEvent is one entry of the append-only audit log: who did what, when
// and why. It never holds a purchase code or a token.
type AuditEvent struct {
	// ID is assigned by the store; ids increase in append order and serve
	// as paging cursors.
	ID             string    `json:"id"`
	At             time.Time `json:"at"`
	Actor          string    `json:"actor"` // admin, installer, gateway
	Action         string    `json:"action"`
	LicenseID      string    `json:"license_id,omitempty"`
	InstallationID string    `json:"installation_id,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	Detail         string    `json:"detail,omitempty"` // e.g. the domain
	// ClientIP is the address the change came from (an installer's
	// connection), PreviousClientIP the one it replaced (a re-activation).
	ClientIP         string `json:"client_ip,omitempty"`
	PreviousClientIP string `json:"previous_client_ip,omitempty"`
	// Source and Product name what an event of no licence is about (a
	// tripped guard, a failing credential), or the licence's.
	Source  string `json:"source,omitempty"`
	Product string `json:"product,omitempty"`
}

// ErrBadCursor means an audit cursor was not one this store issued.
var ErrBadCursor = errors.New("not a valid audit cursor")

// AuditQuery pages through the audit log, oldest first.
type AuditQuery struct {
	After string    // cursor: the last id already seen
	Since time.Time // only events at or after this time
	Limit int
}

// Ledger is what the admin API needs beyond Store: listing licences and
// the audit log.
type Ledger interface {
	// ListLicenses returns up to limit licence states with ids greater than
	// after, in id order.
	ListLicenses(ctx context.Context, after string, limit int) ([]*LicenseState, error)
	// AppendAudit appends an event, assigning its ID.
	AppendAudit(ctx context.Context, ev AuditEvent) error
	// Audit returns events in append order; a cursor the store did not
	// issue yields ErrBadCursor.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A licence's audit timeline (SPEC section 13, the console's licence
// page): its latest audit events, newest first, read without walking the
// audit log, which is in append order for every licence together. Each
// store keeps a bounded copy of a licence's events beside the licence,
// written in the same atomic write as the state and the audit entry
// itself (the events of a LicenseState written by UpdateLicense), so the
// timeline never shows a change that was not committed, nor misses one
// that was. Only the events whose LicenseID is the licence written are
// copied: events of no licence (AppendEvents), and entries appended to
// the log alone (AppendAudit), are in the audit log only.
//
// The copy is bounded twice: a licence keeps its latest MaxTimeline
// events, and the audit log's retention (TrimAudit) takes the copies of
// the entries it trims, so no event outlives audit_retention there
// either.

// MaxTimeline is how many events a licence's timeline keeps, and the
// most one read lists.
const MaxTimeline = 100

// TimelineLimit is the number of events a read asked for limit may
// list: limit, at most MaxTimeline; none for a limit below one.
func TimelineLimit(limit int) int { return max(0, min(limit, MaxTimeline)) }

// AuditByLicense reads a licence's audit timeline. Both stores implement
// it; callers reach it with a type assertion on the Store.
type AuditByLicense interface {
	// LicenseAudit returns the licence's latest audit events, newest
	// first, at most TimelineLimit(limit) of them; none is an empty list.
	// The events have the fields the audit log gives them, At in UTC to
	// the microsecond.
	// Their ID is stable and unique within the licence: on the embedded
	// store the audit log's own id of the entry; on Redis, whose stream
	// assigns an entry's id only when the transaction commits, the id of
	// the event's outbox entry ("<licence>:<seq>", the webhook-id its
	// deliveries carry).
	LicenseAudit(ctx context.Context, licenseID string, limit int) ([]AuditEvent, error)
}

// OnTimeline reports whether ev, written with licence licenseID's state,
// belongs on that licence's timeline.
func OnTimeline(licenseID string, ev *AuditEvent) bool {
	return licenseID != "" && ev.LicenseID == licenseID
}

// Timeline records are compact, for a store holding millions of
// licences: a JSON array of the event's fields by position, without the
// licence id (the record's key names it), trailing empty fields left
// out. Its first element is At in unix microseconds, so a script can
// read an entry's age without decoding the rest:
//
//	[at µs, id, action, actor, installation, detail, reason, client ip,
//	 previous client ip, source, product]
//
// A field added to AuditEvent is appended at the end. An action the
// store knows is written as its short code (timelineCodes).

// timelineCodes are the short codes of the audited actions in timeline
// records. Records outlive a release, so a code, once given, is never
// changed nor reused: add new actions only. A code holds no '.', which
// every action does, so a record's action is a code or the action itself.
var timelineCodes = map[string]string{
	AuditInstallationCreated: "ic", AuditInstallationDeactivated: "id", AuditInstallationMoved: "im",
	AuditInstallationReactivated: "ir", AuditInstallationCloned: "ik", AuditInstallationReleased: "il",
	AuditInstallationStaging: "is", AuditLicenseSuspended: "ls", AuditLicenseReinstated: "lr",
	AuditLicenseLocked: "ll", AuditLicenseUnlocked: "lu", AuditLicenseFlagged: "lf",
	AuditLicenseExpired: "le", AuditLicenseRenewed: "ln", AuditAddonAttached: "aa", AuditAddonDetached: "ad",
	AuditKeysRotated: "kr", AuditRecheckGuardTripped: "rg", AuditSourceCredentialFailing: "sc",
	AuditSourceWebhookRefused: "sw", AuditRecheckRequested: "lq",
}

// timelineActions maps the codes back.
var timelineActions = func() map[string]string {
	m := make(map[string]string, len(timelineCodes))
	for action, code := range timelineCodes {
		m[code] = action
	}
	return m
}()

// EncodeTimeline encodes ev as a timeline record.
func EncodeTimeline(ev AuditEvent) []byte {
	if code, ok := timelineCodes[ev.Action]; ok {
		ev.Action = code
	}
	fields := []string{ev.ID, ev.Action, ev.Actor, ev.InstallationID, ev.Detail, ev.Reason,
		ev.ClientIP, ev.PreviousClientIP, ev.Source, ev.Product}
	for len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	rec := make([]any, 0, 1+len(fields))
	rec = append(rec, ev.At.UnixMicro())
	for _, f := range fields {
		rec = append(rec, f)
	}
	raw, _ := json.Marshal(rec) // an int64 and strings always encode
	return raw
}

// errTimeline is the cause of a record that is not one EncodeTimeline
// wrote.
var errTimeline = errors.New("not a timeline record")

// DecodeTimeline decodes a record of licenseID's timeline.
func DecodeTimeline(licenseID string, raw []byte) (AuditEvent, error) {
	var rec []json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec) == 0 {
		return AuditEvent{}, fmt.Errorf("decoding %s's timeline: %w", licenseID, errTimeline)
	}
	us, err := strconv.ParseInt(string(rec[0]), 10, 64)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("decoding %s's timeline: %w: time %s", licenseID, errTimeline, rec[0])
	}
	ev := AuditEvent{At: time.UnixMicro(us).UTC(), LicenseID: licenseID}
	fields := []*string{&ev.ID, &ev.Action, &ev.Actor, &ev.InstallationID, &ev.Detail, &ev.Reason,
		&ev.ClientIP, &ev.PreviousClientIP, &ev.Source, &ev.Product}
	for i, f := range rec[1:min(len(rec), 1+len(fields))] {
		if err := json.Unmarshal(f, fields[i]); err != nil {
			return AuditEvent{}, fmt.Errorf("decoding %s's timeline: %w: field %d", licenseID, errTimeline, i+1)
		}
	}
	if action, ok := timelineActions[ev.Action]; ok {
		ev.Action = action
	}
	return ev, nil
}

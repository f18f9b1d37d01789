package embedded

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// bucketTimeline holds each licence's audit timeline
// (store.AuditByLicense): "<licence id>\x00<audit id>" -> the event as a
// store.EncodeTimeline record without its id (the key holds it). Audit
// ids are 16 hex digits of one sequence, so a licence's entries sort
// oldest first and a seek past its prefix reads them newest first. At
// most store.MaxTimeline entries per licence.
var bucketTimeline = []byte("license_audit")

func timelinePrefix(licenseID string) []byte { return append([]byte(licenseID), 0) }

func timelineKey(licenseID, auditID string) []byte {
	return append(timelinePrefix(licenseID), auditID...)
}

// addTimeline puts ev (its ID the audit log's) on its licence's timeline.
func addTimeline(tx *bolt.Tx, ev store.AuditEvent) error {
	k := timelineKey(ev.LicenseID, ev.ID)
	ev.ID = ""
	return tx.Bucket(bucketTimeline).Put(k, store.EncodeTimeline(ev))
}

// boundTimeline deletes a licence's oldest entries past
// store.MaxTimeline: it reads the licence's entries only, at most the
// bound and the events of the write that called it.
func boundTimeline(tx *bolt.Tx, licenseID string) error {
	prefix := timelinePrefix(licenseID)
	var keys [][]byte
	c := tx.Bucket(bucketTimeline).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	b := tx.Bucket(bucketTimeline)
	for _, k := range keys[:max(0, len(keys)-store.MaxTimeline)] {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// LicenseAudit implements store.AuditByLicense: a seek past the
// licence's entries, read backwards.
func (s *Store) LicenseAudit(ctx context.Context, licenseID string, limit int) ([]store.AuditEvent, error) {
	limit = store.TimelineLimit(limit)
	out := make([]store.AuditEvent, 0, limit)
	prefix := timelinePrefix(licenseID)
	end := append([]byte(licenseID), 1) // past every "<licence>\x00..."
	err := s.view(ctx, "reading licence audit", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTimeline).Cursor()
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Prev() {
			ev, err := store.DecodeTimeline(licenseID, v)
			if err != nil {
				return err
			}
			ev.ID = string(k[len(prefix):])
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Interface guards
var _ store.AuditByLicense = (*Store)(nil)

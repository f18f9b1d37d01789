package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// ListLicenses implements store.Ledger.
func (s *Store) ListLicenses(ctx context.Context, after string, limit int) ([]*store.LicenseState, error) {
	var out []*store.LicenseState
	err := s.view(ctx, "listing licences", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLicenses).Cursor()
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		for ; k != nil && len(out) < limit; k, _ = c.Next() {
			st, err := readState(tx, string(k))
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendAudit implements store.Ledger.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	return s.update(ctx, "appending audit event", func(tx *bolt.Tx) error { return appendAudit(tx, ev) })
}

// appendAudit appends ev in tx, assigning its ID.
func appendAudit(tx *bolt.Tx, ev store.AuditEvent) error {
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	ev.ID = fmt.Sprintf("%016x", seq)
	return putJSON(b, ev.ID, ev)
}

// Audit implements store.Ledger.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	if q.After != "" && !auditCursor.MatchString(q.After) {
		return nil, store.ErrBadCursor
	}
	var out []store.AuditEvent
	err := s.view(ctx, "reading audit log", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && string(k) == q.After {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < q.Limit; k, v = c.Next() {
			var ev store.AuditEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if !q.Since.IsZero() && ev.At.Before(q.Since) {
				continue
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditCursor is the shape of the ids AppendAudit assigns.
var auditCursor = regexp.MustCompile(`^[0-9a-f]{16}$`)

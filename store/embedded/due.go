package embedded

import (
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// dueKey sorts by time: fixed-width UTC nanoseconds.
func dueKey(at time.Time, licenseID string) []byte {
	return []byte(fmt.Sprintf("%020d|%s", at.UTC().UnixNano(), licenseID))
}

func reindexDue(tx *bolt.Tx, licenseID string, oldNext time.Time, lic *store.License) error {
	b := tx.Bucket(bucketDue)
	if !oldNext.IsZero() {
		if err := b.Delete(dueKey(oldNext, licenseID)); err != nil {
			return err
		}
	}
	if lic.NextCheckAt.IsZero() {
		return nil
	}
	return b.Put(dueKey(lic.NextCheckAt, licenseID), nil)
}

// DueLicenses implements store.Store.
func (s *Store) DueLicenses(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var ids []string
	end := dueKey(before, "\xff")
	err := s.view(ctx, "reading due licences", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			if string(k) > string(end) {
				break
			}
			_, id, _ := strings.Cut(string(k), "|")
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

package embedded

import (
	"fmt"
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

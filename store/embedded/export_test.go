package embedded

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// CountKeys counts the entries of every bucket whose key holds substr.
func CountKeys(s *Store, substr string) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, _ []byte) error {
				if bytes.Contains(k, []byte(substr)) {
					n++
				}
				return nil
			})
		})
	})
	return n, err
}

// DropLookup deletes a licence's entry of a lookup term, as a store
// written before that kind of term existed lacks it.
func DropLookup(s *Store, term, licenseID string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLookup).Delete(lookupKey(term, licenseID)) })
}

// PutUncounted stores a licence's state as a store written before the
// status counts existed left it: not counted, not marked.
func PutUncounted(s *Store, st *store.LicenseState) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		lic := *st.License
		lic.Counted = false
		if err := putJSON(tx.Bucket(bucketLicenses), lic.ID, &lic); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketInstallations), lic.ID, st.Installations)
	})
}

// CorruptOutbox overwrites outbox entry id's record with bytes that do
// not decode.
func CorruptOutbox(s *Store, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Put([]byte(id), []byte("{not json")) })
}

// DropFailedIndex deletes the failed outbox entries' index, as a file
// written before it existed lacks it.
func DropFailedIndex(s *Store) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketOutboxFailed) })
}

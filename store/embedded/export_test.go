package embedded

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
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

package embedded

import (
	"bytes"
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// bucketVersions holds each product's version counts (store.CountVersions):
// "<product>\x00<version>" -> big-endian uint64 count, a version's entry
// deleted when its count falls to zero, so a product has at most
// store.MaxVersions entries and store.VersionOther's. A product is a
// configured name and a version is printable, so the NUL ends the
// product and a prefix seek lists its versions.
var bucketVersions = []byte("versions")

func versionKey(product, version string) []byte {
	return append(append([]byte(product), 0), version...)
}

// trackedVersions reads, in tx, the versions a product's counts hold.
func trackedVersions(tx *bolt.Tx) func(product string) (map[string]bool, error) {
	return func(product string) (map[string]bool, error) {
		table := map[string]bool{}
		prefix := versionKey(product, "")
		c := tx.Bucket(bucketVersions).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			table[string(k[len(prefix):])] = true
		}
		return table, nil
	}
}

// countVersions settles the version counts of a write of next over old
// (store.CountVersions) and applies them in tx.
func countVersions(tx *bolt.Tx, old, next []store.Installation) error {
	deltas, err := store.CountVersions(old, next, trackedVersions(tx))
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketVersions)
	for _, d := range deltas {
		key := versionKey(d.Product, d.Version)
		n := int64(counterValue(b.Get(key))) + d.N
		if n <= 0 {
			err = b.Delete(key)
		} else {
			err = b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Versions implements store.Counters.
func (s *Store) Versions(ctx context.Context, product string) (map[string]int64, error) {
	out := map[string]int64{}
	prefix := versionKey(product, "")
	err := s.view(ctx, "reading version counts", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVersions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n := int64(counterValue(v)); n > 0 {
				out[string(k[len(prefix):])] = n
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// bucketQuota: "<installation id>|<window start, unix s, 16 hex>" ->
// big-endian uint64 count.
var bucketQuota = []byte("quota")

// AddQuota implements store.Store: the whole batch in one bbolt
// update, which also drops each installation's counters of earlier
// windows.
func (s *Store) AddQuota(ctx context.Context, deltas []store.QuotaDelta) ([]int64, error) {
	totals := make([]int64, len(deltas))
	err := s.update(ctx, "counting quota", func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketQuota)
		if err != nil {
			return err
		}
		for i, d := range deltas {
			prefix := []byte(d.InstallationID + "|")
			key := strconv.AppendUint(prefix, uint64(d.Window.Unix()), 16)
			c := b.Cursor()
			var stale [][]byte
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if !bytes.Equal(k, key) {
					stale = append(stale, bytes.Clone(k))
				}
			}
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			var n uint64
			if v := b.Get(key); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			n += uint64(d.N)
			if d.N > 0 {
				if err := b.Put(key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
					return err
				}
			}
			totals[i] = int64(n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return totals, nil
}

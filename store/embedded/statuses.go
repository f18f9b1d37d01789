package embedded

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// bucketStatus holds the status counts (store.StatusCounter): count name
// ("license:<status>", "installation:<status>", "locked") -> big-endian
// count, adjusted in the licence's own transaction, so exact; a count
// back at zero is deleted. A few dozen entries at most.
var bucketStatus = []byte("status_counts")

// countStatuses settles the status counts of writing next over a state
// counted as before (store.CountStatuses), marking next counted, and
// applies them in tx.
func countStatuses(tx *bolt.Tx, before store.StatusShare, next *store.LicenseState) error {
	b := tx.Bucket(bucketStatus)
	for _, d := range store.CountStatuses(before, next) {
		key := []byte(d.Name)
		n := int64(counterValue(b.Get(key))) + d.N
		var err error
		if n == 0 {
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

// StatusCounts implements store.StatusCounter: a read of a small bucket.
func (s *Store) StatusCounts(ctx context.Context) (licenses, installations map[string]int64, locked int64, err error) {
	kept := map[string]int64{}
	err = s.view(ctx, "reading status counts", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStatus).ForEach(func(k, v []byte) error {
			kept[string(k)] = int64(counterValue(v))
			return nil
		})
	})
	if err != nil {
		return nil, nil, 0, err
	}
	licenses, installations, locked = store.SplitStatusCounts(kept)
	return licenses, installations, locked, nil
}

// Interface guards
var _ store.StatusCounter = (*Store)(nil)

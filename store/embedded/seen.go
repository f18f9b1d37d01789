package embedded

import (
	"context"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// RecordSeen implements store.Store: the whole batch in one bbolt
// update, under the writer lock UpdateLicense also takes, so neither
// loses the other's write; a changed version's counts move in it too.
func (s *Store) RecordSeen(ctx context.Context, seen []store.Seen) error {
	if len(seen) == 0 {
		return nil
	}
	order, by := store.SeenByLicense(seen)
	return s.update(ctx, "recording last seen", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInstallations)
		for _, id := range order {
			st := &store.LicenseState{}
			found, err := getJSON(b, id, &st.Installations)
			if err != nil {
				return err
			}
			stored := slices.Clone(st.Installations)
			if !found || !store.ApplySeen(st, by[id]) {
				continue
			}
			if err := countVersions(tx, stored, st.Installations); err != nil {
				return err
			}
			if err := putJSON(b, id, st.Installations); err != nil {
				return err
			}
		}
		return nil
	})
}

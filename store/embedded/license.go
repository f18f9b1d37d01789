package embedded

import (
	"context"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

func readState(tx *bolt.Tx, licenseID string) (*store.LicenseState, error) {
	st := &store.LicenseState{}
	var lic store.License
	found, err := getJSON(tx.Bucket(bucketLicenses), licenseID, &lic)
	if err != nil {
		return nil, err
	}
	if found {
		st.License = &lic
	}
	if _, err := getJSON(tx.Bucket(bucketInstallations), licenseID, &st.Installations); err != nil {
		return nil, err
	}
	return st, nil
}

// LicenseState implements store.Store.
func (s *Store) LicenseState(ctx context.Context, licenseID string) (*store.LicenseState, error) {
	return s.viewState(ctx, "reading licence", licenseID)
}

// viewState reads a licence's state in a read transaction of its own, for
// ctx's caller (see view).
func (s *Store) viewState(ctx context.Context, op, licenseID string) (*store.LicenseState, error) {
	var st *store.LicenseState
	err := s.view(ctx, op, func(tx *bolt.Tx) error {
		var err error
		st, err = readState(tx, licenseID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// UpdateLicense implements store.Store. fn runs once on a read snapshot
// and, when it returns a state to write, once more under bbolt's writer
// lock, which serialises writers: the second decision is the one stored.
func (s *Store) UpdateLicense(ctx context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	// Most refusals write nothing: decide them on a read snapshot, without
	// the write transaction's fsync. Only a state to write is decided
	// again, atomically, under the writer lock.
	if st, done, err := s.readOnlyDecision(ctx, licenseID, fn); done {
		return st, err
	}
	return s.updateLicense(ctx, licenseID, fn)
}

// readOnlyDecision runs fn on a snapshot; done when fn wrote nothing or
// failed.
func (s *Store) readOnlyDecision(ctx context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, bool, error) {
	cur, err := s.viewState(ctx, "updating licence", licenseID)
	if err != nil {
		return nil, true, err
	}
	snapshot := *cur
	if cur.License != nil {
		lic := *cur.License
		snapshot.License = &lic
	}
	snapshot.Installations = append([]store.Installation(nil), cur.Installations...)
	next, err := fn(&snapshot)
	if err != nil {
		return nil, true, err
	}
	if next == nil {
		return cur, true, nil
	}
	return nil, false, nil
}

func (s *Store) updateLicense(ctx context.Context, licenseID string, fn func(*store.LicenseState) (*store.LicenseState, error)) (*store.LicenseState, error) {
	var written *store.LicenseState
	var wrote bool
	err := s.update(ctx, "updating licence", func(tx *bolt.Tx) error {
		written, wrote = nil, false // fn may run more than once (see update)
		cur, err := readState(tx, licenseID)
		if err != nil {
			return err
		}
		// fn may edit cur: remember what is stored before it runs.
		var prev store.License
		if cur.License != nil {
			prev = *cur.License
		}
		had := installationIDs(cur.Installations)
		terms := cur.Terms()
		share := store.CountedShare(cur)
		stored := slices.Clone(cur.Installations)
		next, err := fn(cur)
		if err != nil {
			return errAbort{err}
		}
		if next == nil {
			written = cur
			return nil
		}
		// The caller's slice stays as it was; the state written (and
		// returned) records where each installation is counted.
		next.Installations = slices.Clone(next.Installations)
		if err := countVersions(tx, stored, next.Installations); err != nil {
			return err
		}
		if next.License != nil {
			if err := countStatuses(tx, share, next); err != nil {
				return err
			}
		}
		if err := writeState(tx, licenseID, prev, had, next); err != nil {
			return err
		}
		if err := reindexTerms(tx, licenseID, terms, next.Terms()); err != nil {
			return err
		}
		if err := writeEvents(tx, licenseID, next.Events); err != nil {
			return err
		}
		for _, f := range next.Families { // in the same commit (LicenseState.Families)
			if err := putJSON(tx.Bucket(bucketRefresh), f.ID, f); err != nil {
				return err
			}
		}
		next.Events, next.Families = nil, nil
		written, wrote = next, true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if wrote { // nothing changed when fn wrote nothing: no notice
		s.publish(store.Change{LicenseID: licenseID})
	}
	return written, nil
}

// writeState stores st over prev (the stored licence, zero when new),
// forgetting the index entries of the installations in had that st no
// longer holds.
func writeState(tx *bolt.Tx, licenseID string, prev store.License, had []string, st *store.LicenseState) error {
	if st.License == nil {
		return errors.New("state to write has no licence")
	}
	if err := reindexDue(tx, licenseID, prev.NextCheckAt, st.License); err != nil {
		return err
	}
	st.License.Version = prev.Version + 1
	if err := putJSON(tx.Bucket(bucketLicenses), licenseID, st.License); err != nil {
		return err
	}
	if err := putJSON(tx.Bucket(bucketInstallations), licenseID, st.Installations); err != nil {
		return err
	}
	idx := tx.Bucket(bucketInstallIndex)
	kept := make(map[string]bool, len(st.Installations))
	for _, in := range st.Installations {
		kept[in.ID] = true
		if err := idx.Put([]byte(in.ID), []byte(licenseID)); err != nil {
			return err
		}
	}
	for _, id := range had {
		if !kept[id] {
			if err := idx.Delete([]byte(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

func installationIDs(ins []store.Installation) []string {
	ids := make([]string, 0, len(ins))
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	return ids
}

// InstallationLicense implements store.Store.
func (s *Store) InstallationLicense(ctx context.Context, installationID string) (string, error) {
	var id string
	err := s.view(ctx, "reading installation index", func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketInstallIndex).Get([]byte(installationID)))
		return nil
	})
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", store.ErrNotFound
	}
	return id, nil
}

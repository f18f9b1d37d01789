package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// ClaimDue implements store.Scheduler in one write transaction: the due
// entries are read from the start of the index and each is moved to
// now+claimFor together with its licence's NextCheckAt, so the index and
// the records agree and a later UpdateLicense re-indexes from the claimed
// time.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, claimFor time.Duration) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	until := now.Add(claimFor)
	end := dueKey(now, "\xff")
	// Nothing due (the worker's usual poll): answer from a read, without a
	// write transaction and its fsync.
	var due bool
	if err := s.view(ctx, "claiming due licences", func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketDue).Cursor().First()
		due = k != nil && bytes.Compare(k, end) <= 0
		return nil
	}); err != nil || !due {
		return nil, err
	}
	var ids []string
	err := s.update(ctx, "claiming due licences", func(tx *bolt.Tx) error {
		ids = ids[:0]
		b := tx.Bucket(bucketDue)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit && bytes.Compare(k, end) <= 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		lics := tx.Bucket(bucketLicenses)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
			_, id, _ := strings.Cut(string(k), "|")
			var lic store.License
			found, err := getJSON(lics, id, &lic)
			if err != nil {
				return err
			}
			if !found {
				continue // an entry without its licence: dropped
			}
			lic.NextCheckAt = until
			lic.Version++
			if err := putJSON(lics, id, &lic); err != nil {
				return err
			}
			if err := b.Put(dueKey(until, id), nil); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// NextDue implements store.Scheduler: the due bucket's first key.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	var next time.Time
	err := s.view(ctx, "reading the next due licence", func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketDue).Cursor().First()
		next = dueKeyTime(k)
		return nil
	})
	return next, err
}

// dueKeyTime is the time a due-index key sorts by (zero for none).
func dueKeyTime(k []byte) time.Time {
	if k == nil {
		return time.Time{}
	}
	ts, _, _ := strings.Cut(string(k), "|")
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// DueStats implements store.Scheduler. Scheduled is the bucket's key
// count; Due walks the due part of the index, up to store.DueCountCap.
func (s *Store) DueStats(ctx context.Context, now time.Time) (store.DueStats, error) {
	var st store.DueStats
	err := s.view(ctx, "counting due licences", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDue)
		st.Scheduled = int64(b.Stats().KeyN)
		end := dueKey(now, "\xff")
		c := b.Cursor()
		k, _ := c.First()
		st.Oldest = dueKeyTime(k)
		for ; k != nil && st.Due < store.DueCountCap && bytes.Compare(k, end) <= 0; k, _ = c.Next() {
			st.Due++
		}
		return nil
	})
	return st, err
}

// AcquireLease implements store.Scheduler.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error) {
	var got store.Lease
	var held bool
	err := s.update(ctx, "acquiring lease", func(tx *bolt.Tx) error {
		got, held = store.Lease{}, false // a group commit may run this again
		b := tx.Bucket(bucketLeases)
		var cur store.Lease
		if _, err := getJSON(b, name, &cur); err != nil {
			return err
		}
		live := cur.Holder != "" && now.Before(cur.Expires)
		if live && cur.Holder != holder {
			got, held = cur, true
			return nil
		}
		next := store.Lease{Name: name, Holder: holder, Token: cur.Token, Expires: now.Add(ttl)}
		if !live {
			next.Token++ // a new holding: a new token
		}
		got = next
		return putJSON(b, name, next)
	})
	if err != nil {
		return store.Lease{}, err
	}
	if held {
		return got, fmt.Errorf("acquiring lease %s: %w", name, store.ErrLeaseHeld)
	}
	return got, nil
}

// RenewLease implements store.Scheduler.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, now time.Time, ttl time.Duration) (store.Lease, error) {
	var got store.Lease
	var lost bool
	err := s.update(ctx, "renewing lease", func(tx *bolt.Tx) error {
		got, lost = store.Lease{}, false // a group commit may run this again
		b := tx.Bucket(bucketLeases)
		var cur store.Lease
		if _, err := getJSON(b, l.Name, &cur); err != nil {
			return err
		}
		if cur.Holder != l.Holder || cur.Token != l.Token || !now.Before(cur.Expires) {
			lost = true
			return nil
		}
		cur.Expires = now.Add(ttl)
		got = cur
		return putJSON(b, l.Name, cur)
	})
	if err != nil {
		return store.Lease{}, err
	}
	if lost {
		return store.Lease{}, fmt.Errorf("renewing lease %s: %w", l.Name, store.ErrLeaseLost)
	}
	return got, nil
}

// ReleaseLease implements store.Scheduler.
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	return s.update(ctx, "releasing lease", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		var cur store.Lease
		if _, err := getJSON(b, l.Name, &cur); err != nil {
			return err
		}
		if cur.Holder != l.Holder || cur.Token != l.Token {
			return nil
		}
		cur.Holder, cur.Expires = "", time.Time{}
		return putJSON(b, l.Name, cur)
	})
}

// freeLeases releases every lease on Open. bbolt locks the file to one
// process, so a holder recorded in it is a process that is gone (killed
// without releasing): its successor need not wait out the lease's TTL. The
// token count is kept, so the fencing order holds.
func freeLeases(tx *bolt.Tx) error {
	b := tx.Bucket(bucketLeases)
	var freed []store.Lease
	err := b.ForEach(func(_, v []byte) error {
		var l store.Lease
		if err := json.Unmarshal(v, &l); err != nil {
			return nil // unreadable: left for AcquireLease to report, not a reason to refuse to open
		}
		if l.Holder != "" {
			l.Holder, l.Expires = "", time.Time{}
			freed = append(freed, l)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range freed {
		if err := putJSON(b, l.Name, l); err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var _ store.Scheduler = (*Store)(nil)

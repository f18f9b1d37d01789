package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/licensegate/licensegate/store"
)

// bucketLookup indexes licences by lookup term: "<term>\x00<licence id>"
// -> nil. A term is printable, so the NUL ends it and a prefix seek lists
// its licences in id order.
var bucketLookup = []byte("lookup")

// bucketAsks holds the licences queued for a check now: licence id ->
// the latest ask, unix ns (8 bytes, big-endian).
var bucketAsks = []byte("asks")

func lookupKey(term, licenseID string) []byte {
	return append(append([]byte(term), 0), licenseID...)
}

// reindexTerms moves a licence's lookup entries from the terms it was
// indexed by to those it is to be. Every term it is to have is put if
// missing, not only the new ones: a licence stored before a kind of term
// existed (domains, buyer names) is indexed by its next write, as Redis
// re-adds every term.
func reindexTerms(tx *bolt.Tx, licenseID string, old, next []string) error {
	b := tx.Bucket(bucketLookup)
	gone, _ := store.TermChanges(old, next)
	for _, t := range gone {
		if err := b.Delete(lookupKey(t, licenseID)); err != nil {
			return err
		}
	}
	for _, t := range next {
		if k := lookupKey(t, licenseID); b.Get(k) == nil {
			if err := b.Put(k, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// Lookup implements store.Finder: a seek to the term, and at most
// MaxLookup entries read after it.
func (s *Store) Lookup(ctx context.Context, term string) ([]string, error) {
	ids := []string{}
	prefix := append([]byte(term), 0)
	err := s.view(ctx, "looking up licences", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLookup).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < store.MaxLookup; k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// LookupAfter implements store.TermPager: a seek to the term's entry
// for after, and at most a page of entries read from there.
func (s *Store) LookupAfter(ctx context.Context, term, after string, limit int) ([]string, error) {
	limit = store.PageLimit(limit)
	ids := []string{}
	prefix := append([]byte(term), 0)
	err := s.view(ctx, "paging licences by term", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLookup).Cursor()
		from := lookupKey(term, after)
		k, _ := c.Seek(from)
		if after != "" && bytes.Equal(k, from) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(ids) < limit; k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// CountTerm implements store.TermPager by walking the term's entries
// (keys only, in one read transaction that blocks no writer): the work
// is the term's size, never the store's, and the count is exact by
// construction, with nothing kept on the write path.
func (s *Store) CountTerm(ctx context.Context, term string) (int64, error) {
	var n int64
	prefix := append([]byte(term), 0)
	err := s.view(ctx, "counting licences by term", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLookup).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AskCheck implements store.Scheduler.
func (s *Store) AskCheck(ctx context.Context, licenseID string, at time.Time) error {
	err := s.update(ctx, "queueing a check", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAsks)
		if prev, ok := askTime(b.Get([]byte(licenseID))); ok && !at.After(prev) {
			return nil
		}
		return b.Put([]byte(licenseID), binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())))
	})
	if err != nil {
		return err
	}
	s.publish(store.Change{LicenseID: licenseID, Asked: true})
	return nil
}

// Asked implements store.Scheduler. The queue is short (an ask lives from
// a webhook to the check after it), so it is read whole and sorted.
func (s *Store) Asked(ctx context.Context, limit int) ([]store.Ask, error) {
	var asks []store.Ask
	err := s.view(ctx, "reading queued checks", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAsks).ForEach(func(k, v []byte) error {
			if at, ok := askTime(v); ok {
				asks = append(asks, store.Ask{LicenseID: string(k), At: at})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	store.SortAsks(asks)
	if len(asks) > limit {
		asks = asks[:limit]
	}
	return asks, nil
}

// DoneAsk implements store.Scheduler.
func (s *Store) DoneAsk(ctx context.Context, licenseID string, at time.Time) error {
	return s.update(ctx, "dequeueing a check", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAsks)
		prev, ok := askTime(b.Get([]byte(licenseID)))
		if !ok || prev.After(at) {
			return nil
		}
		return b.Delete([]byte(licenseID))
	})
}

// askTime decodes a queued ask's time.
func askTime(v []byte) (time.Time, bool) {
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), true
}

// Interface guards
var _ store.TermPager = (*Store)(nil)

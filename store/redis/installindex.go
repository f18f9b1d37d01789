package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// The installation index: installation id -> licence id, for the admin
// API's and the console's look-up of an installation (InstallationLicense).
//
// It is a hash per bucket, Pinsb:<bucket>, installation id -> licence id,
// an installation's bucket being its id's FNV-1a hash modulo
// installBuckets (4 hex digits). A key per installation costs Redis about
// 150 bytes (the key, its object and its entry in the keyspace's table,
// besides the two ids); a field in a hash small enough to be stored as a
// listpack costs little more than the two ids, about 70 bytes, and the
// bucket's own key is shared by all its fields. A hash stays a listpack up
// to hash-max-listpack-entries fields (512 by default, Redis 7): with
// 65,536 buckets that is about 25 million installations on average 380 a
// bucket; past it the fullest buckets become hash tables, which cost about
// what keys did, and raising hash-max-listpack-entries keeps them compact.
//
// Each bucket is a key of its own slot on Cluster: the index is written in
// the licence's MULTI/EXEC where the bucket shares its slot (always with a
// plain client), right after it otherwise, as the index keys before it
// were (see the package doc).
//
// Before, the index was a string key per installation, Pins:<installation>.
// InstallationLicense reads the bucket and that key in one round trip (the
// bucket first), and every write of a licence writes its installations'
// fields and deletes their keys: a keyspace written before moves to the
// buckets licence by licence, as licences are written. An instance of an
// earlier version reads only the keys: it does not find installations
// written by this one (the admin API's and the console's look-up by
// installation id; tokens name their licence and need no index), so
// upgrade all instances together.
const installBuckets = 1 << 16

// installBucketKey is the bucket of installation id.
func (s *Store) installBucketKey(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%sinsb:%04x", s.prefix, h.Sum32()%installBuckets)
}

// legacyInstallKey is an installation's index key of the layout before.
func (s *Store) legacyInstallKey(id string) string { return s.prefix + "ins:" + id }

// installWrites are the index writes of a licence's write: the fields of
// the installations it keeps (their keys of the layout before deleted) and
// the removal of those it forgets.
func (s *Store) installWrites(ctx context.Context, licenseID string, kept, forgotten []string) []indexWrite {
	out := make([]indexWrite, 0, 2*(len(kept)+len(forgotten)))
	for _, id := range kept {
		bk, old := s.installBucketKey(id), s.legacyInstallKey(id)
		out = append(out,
			indexWrite{bk, func(p redis.Pipeliner) { p.HSet(ctx, bk, id, licenseID) }},
			indexWrite{old, func(p redis.Pipeliner) { p.Del(ctx, old) }})
	}
	for _, id := range forgotten {
		bk, old := s.installBucketKey(id), s.legacyInstallKey(id)
		out = append(out,
			indexWrite{bk, func(p redis.Pipeliner) { p.HDel(ctx, bk, id) }},
			indexWrite{old, func(p redis.Pipeliner) { p.Del(ctx, old) }})
	}
	return out
}

// InstallationLicense implements store.Store: the bucket's field, else the
// key of the layout before, in one round trip.
func (s *Store) InstallationLicense(ctx context.Context, installationID string) (string, error) {
	if installationID == "" {
		return "", store.ErrNotFound
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var field, legacy *redis.StringCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		field = p.HGet(ctx, s.installBucketKey(installationID), installationID)
		legacy = p.Get(ctx, s.legacyInstallKey(installationID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", failed(ctx, "reading installation index", err)
	}
	for _, c := range []*redis.StringCmd{field, legacy} {
		id, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return "", failed(ctx, "reading installation index", err)
		}
		return id, nil
	}
	return "", store.ErrNotFound
}

package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Last seen (SPEC section 4): the gate notes each admitted installation's
// last use in memory, and the last_seen worker writes what changed to the
// store in one batch every LastSeenInterval (default 1m), so an
// installation costs at most one store write per interval per instance
// and a request never waits on the store for it. The product version an
// installation reports at the gate (X-Product-Version) travels with its
// last seen: a changed version is written by the next batch, and the
// store moves the installation in its product's version counts in the
// same write (store.CountVersions). A batch the store refuses stays
// pending and is tried again next interval; at most maxSeenPending
// installations are held per instance (past that, newly seen ones wait
// until the store takes a batch).

// DefaultLastSeenInterval is how often noted uses are written.
const DefaultLastSeenInterval = time.Minute

const (
	seenShards     = 32
	maxSeenPending = 100_000
	// seenResolution: a use within this of the one noted is not noted
	// again (spares the shard's cache line on a busy installation).
	seenResolution = time.Second
)

type seenEntry struct {
	license string
	at      time.Time // last use noted
	written time.Time // last use the store took
	// version is the last version reported ("": none yet), wroteVersion
	// the one the store took.
	version      string
	wroteVersion string
}

type seenShard struct {
	mu sync.Mutex
	m  map[string]seenEntry // by installation id
}

// seenTracker is the gate's in-process last-seen map, sharded by
// installation id so concurrent requests rarely share a lock.
type seenTracker struct {
	shards [seenShards]seenShard
}

func newSeenTracker() *seenTracker {
	t := &seenTracker{}
	for i := range t.shards {
		t.shards[i].m = map[string]seenEntry{}
	}
	return t
}

func (t *seenTracker) shard(id string) *seenShard { return &t.shards[hashID(id)%seenShards] }

// hashID is FNV-1a of an id, without allocating: it picks the shard of
// the in-process maps the gate writes to.
func hashID(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return h
}

// touch notes a use, and the version the installation reported ("":
// none, the last one stands). The strings are the cached state's own and
// the request's: storing them allocates nothing once the installation
// has an entry.
func (t *seenTracker) touch(installation, license, version string, now time.Time) {
	sh := t.shard(installation)
	sh.mu.Lock()
	e, ok := sh.m[installation]
	switch {
	case ok && now.Sub(e.at) < seenResolution && (version == "" || version == e.version):
	case ok:
		e.at = now
		if version != "" {
			e.version = version
		}
		sh.m[installation] = e
	case len(sh.m) < maxSeenPending/seenShards:
		sh.m[installation] = seenEntry{license: license, at: now, version: version}
	}
	sh.mu.Unlock()
}

// pending returns the uses not written yet, and forgets entries written
// and unused for forget.
func (t *seenTracker) pending(now time.Time, forget time.Duration) []store.Seen {
	var out []store.Seen
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			switch {
			case e.at.After(e.written) || e.version != e.wroteVersion:
				out = append(out, store.Seen{LicenseID: e.license, InstallationID: id, At: e.at, Version: e.version})
			case now.Sub(e.at) > forget:
				delete(sh.m, id)
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// written records that the store took a batch.
func (t *seenTracker) written(batch []store.Seen) {
	for _, s := range batch {
		sh := t.shard(s.InstallationID)
		sh.mu.Lock()
		if e, ok := sh.m[s.InstallationID]; ok {
			if s.At.After(e.written) {
				e.written = s.At
			}
			e.wroteVersion = s.Version
			sh.m[s.InstallationID] = e
		}
		sh.mu.Unlock()
	}
}

// lastSeenInterval is the configured interval, or the default.
func (s *Service) lastSeenInterval() time.Duration {
	if s.cfg.LastSeenInterval > 0 {
		return s.cfg.LastSeenInterval
	}
	return DefaultLastSeenInterval
}

// FlushLastSeen writes the noted uses not written yet, as one batch. On
// failure they stay noted for the next flush.
func (s *Service) FlushLastSeen(ctx context.Context) error {
	batch := s.seen.pending(s.now(), 2*s.lastSeenInterval())
	if len(batch) == 0 {
		return nil
	}
	if err := s.cfg.Store.RecordSeen(ctx, batch); err != nil {
		return err
	}
	s.seen.written(batch)
	return nil
}

// lastSeenTimeout bounds one flush.
const lastSeenTimeout = 10 * time.Second

// recordLastSeen is the last_seen worker: a flush every interval, and a
// last one when ctx ends (the app stopping), so a reload loses nothing.
func (s *Service) recordLastSeen(ctx context.Context) error {
	flush := func(ctx context.Context) {
		fctx, cancel := context.WithTimeout(ctx, lastSeenTimeout)
		defer cancel()
		if err := s.FlushLastSeen(fctx); err != nil && ctx.Err() == nil {
			s.log.Warn("recording last seen; kept for the next try", zap.Error(err))
		}
	}
	err := every(ctx, s.lastSeenInterval(), flush)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if ferr := s.FlushLastSeen(fctx); ferr != nil {
		s.log.Warn("recording last seen at stop", zap.Error(ferr))
	}
	return err
}

// releaseIdle marks the named installations of st released at now
// (release_idle) and returns them as released.
func releaseIdle(st *store.LicenseState, ids []string, now time.Time) []store.Installation {
	var out []store.Installation
	for _, id := range ids {
		if in := st.Installation(id); in != nil && in.Active() {
			in.Status, in.DeactivatedAt, in.UpdatedAt = store.InstallationReleased, now, now
			out = append(out, *in)
		}
	}
	return out
}

// releasedEvents records, with st's write, the installations
// release_idle released.
func (s *Service) releasedEvents(ctx context.Context, st *store.LicenseState, released []store.Installation, why string) {
	for _, in := range released {
		s.event(ctx, st, Event{Actor: ActorGateway, Action: store.AuditInstallationReleased, LicenseID: in.LicenseID, InstallationID: in.ID, Detail: in.Domain, Reason: why})
	}
}

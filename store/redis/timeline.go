package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// timelineKey is a licence's audit timeline (store.AuditByLicense): a
// list of its latest events, newest first, as store.EncodeTimeline
// records whose id is the event's outbox seq; at most store.MaxTimeline
// of them. It is under the licence's hash tag, so the licence's
// MULTI/EXEC writes it with the state on Cluster too. A list of short
// records is stored as a listpack: a licence's few events cost little
// more than their bytes.
func (s *Store) timelineKey(licenseID string) string { return s.prefix + "{" + licenseID + "}:audit" }

// timelineRecord is ev's record on its licence's timeline.
func timelineRecord(ev store.AuditEvent, seq int64) []byte {
	ev.ID = strconv.FormatInt(seq, 10)
	return store.EncodeTimeline(ev)
}

// pushTimeline adds records, oldest first, to the head of a licence's
// timeline in p (the licence's transaction), and drops what falls past
// the bound.
func (s *Store) pushTimeline(ctx context.Context, p redis.Pipeliner, licenseID string, records []any) {
	k := s.timelineKey(licenseID)
	p.LPush(ctx, k, records...)
	p.LTrim(ctx, k, 0, store.MaxTimeline-1)
}

// LicenseAudit implements store.AuditByLicense: LRANGE of the head.
func (s *Store) LicenseAudit(ctx context.Context, licenseID string, limit int) ([]store.AuditEvent, error) {
	limit = store.TimelineLimit(limit)
	out := make([]store.AuditEvent, 0, limit)
	if limit == 0 {
		return out, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	recs, err := s.client.LRange(ctx, s.timelineKey(licenseID), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, failed(ctx, "reading licence audit", err)
	}
	for _, raw := range recs {
		ev, err := store.DecodeTimeline(licenseID, []byte(raw))
		if err != nil {
			return nil, unavailable("reading licence audit", err)
		}
		ev.ID = licenseID + ":" + ev.ID // the outbox entry's id
		out = append(out, ev)
	}
	return out, nil
}

// trimTimelineScript drops a timeline's events older than a cutoff, from
// its oldest end, stopping at the first one kept: the audit log's
// retention, applied to the licences whose entries TrimAudit took. A
// record starts with its time in unix µs (store.EncodeTimeline).
//
// KEYS[1]: the timeline; ARGV[1]: the cutoff, unix µs. Returns how many
// it dropped.
var trimTimelineScript = redis.NewScript(`
local n = 0
while true do
  local rec = redis.call('LINDEX', KEYS[1], -1)
  if not rec then break end
  local at = tonumber(string.match(rec, '^%[(%-?%d+)'))
  if at and at >= tonumber(ARGV[1]) then break end
  redis.call('RPOP', KEYS[1])
  n = n + 1
end
return n
`)

// trimTimelines applies the audit log's cutoff to the timelines of the
// licences named, one script per licence (each in its own slot).
func (s *Store) trimTimelines(ctx context.Context, licenseIDs map[string]bool, before time.Time) error {
	if len(licenseIDs) == 0 {
		return nil
	}
	cutoff := strconv.FormatInt(before.UnixMicro(), 10)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id := range licenseIDs {
			trimTimelineScript.Eval(ctx, p, []string{s.timelineKey(id)}, cutoff)
		}
		return nil
	})
	return err
}

// Interface guards
var _ store.AuditByLicense = (*Store)(nil)

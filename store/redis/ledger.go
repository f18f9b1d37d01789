package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// The ledger: a sorted set of every licence id (score 0, so ordered by id
// and paged with ZRANGEBYLEX), kept by UpdateLicense, and the audit log as
// a stream (XADD ids increase in append order and serve as cursors).

// ListLicenses implements store.Ledger. An id indexed without a licence
// behind it is skipped and the page filled from further on, so a short page
// means the end, as on the embedded store.
func (s *Store) ListLicenses(ctx context.Context, after string, limit int) ([]*store.LicenseState, error) {
	if limit <= 0 {
		return nil, nil // go-redis reads Count 0 as "no limit"
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var out []*store.LicenseState
	for len(out) < limit {
		want := limit - len(out)
		ids, page, err := s.licensePage(ctx, after, want)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(ids) < want {
			break
		}
		after = ids[len(ids)-1]
	}
	return out, nil
}

// licensePage reads up to n indexed ids after the cursor and the licences
// stored under them.
func (s *Store) licensePage(ctx context.Context, after string, n int) ([]string, []*store.LicenseState, error) {
	min := "-"
	if after != "" {
		min = "(" + after
	}
	ids, err := s.client.ZRangeByLex(ctx, s.licensesKey(), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(n)}).Result()
	if err != nil {
		return nil, nil, failed(ctx, "listing licences", err)
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.stateKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, failed(ctx, "listing licences", err)
	}
	out := make([]*store.LicenseState, 0, len(ids))
	for _, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // indexed but gone: skip
		}
		if err != nil {
			return nil, nil, failed(ctx, "listing licences", err)
		}
		st, err := decodeState(raw)
		if err != nil {
			return nil, nil, unavailable("listing licences", err)
		}
		if st.License != nil {
			out = append(out, st)
		}
	}
	return ids, out, nil
}

// AppendAudit implements store.Ledger.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	ev.ID = ""
	raw, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding audit event: %w", err)
	}
	if err := s.client.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), Values: []any{"event", raw}}).Err(); err != nil {
		return failed(ctx, "appending audit event", err)
	}
	return nil
}

// Audit implements store.Ledger.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if q.After != "" && !streamID.MatchString(q.After) {
		return nil, store.ErrBadCursor
	}
	start := "-"
	switch {
	case q.After != "":
		start = "(" + q.After
	case !q.Since.IsZero():
		start = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	msgs, err := s.client.XRangeN(ctx, s.auditKey(), start, "+", int64(q.Limit)).Result()
	if err != nil {
		return nil, failed(ctx, "reading audit log", err)
	}
	out := make([]store.AuditEvent, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["event"].(string)
		var ev store.AuditEvent
		if err := json.Unmarshal([]byte(raw), &ev); err != nil {
			return nil, unavailable("reading audit log", fmt.Errorf("event %s: %w", m.ID, err))
		}
		ev.ID = m.ID
		if !q.Since.IsZero() && ev.At.Before(q.Since) {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

// streamID is the shape of a Redis stream entry id, the audit cursor.
var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// Interface guards
var _ store.Ledger = (*Store)(nil)

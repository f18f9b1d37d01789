package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Endpoint is one receiver of webhooks.
type Endpoint struct {
	// URL receives the POSTs; its TargetID names the endpoint's progress
	// in an outbox entry.
	URL string
	// Secrets sign each message; two during a rotation (both signatures
	// are sent).
	Secrets []Secret
	// Events are the event types sent; empty: all.
	Events []string
	// Client sends the requests (NewClient with the endpoint's timeout).
	Client *http.Client
}

// TargetID names the endpoint in an outbox entry's Targets: "ep_" and 12
// hex digits of the SHA-256 of its URL. Not the URL: entries are stored
// and listed by the admin API, and a URL may carry a token.
func (e *Endpoint) TargetID() string { return targetID(e.URL) }

func targetID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "ep_" + hex.EncodeToString(sum[:6])
}

// rekeyTargets moves the progress of an entry written before target ids,
// keyed by each endpoint's URL, to the ids, for every endpoint (also one
// no longer configured).
func rekeyTargets(t map[string]string) {
	for k, st := range t {
		if strings.HasPrefix(k, "ep_") {
			continue
		}
		delete(t, k)
		if id := targetID(k); t[id] == "" {
			t[id] = st
		}
	}
}

// Wants reports whether the endpoint subscribes to the event type.
func (e *Endpoint) Wants(eventType string) bool {
	return len(e.Events) == 0 || slices.Contains(e.Events, eventType)
}

// Defaults for Config.
const (
	DefaultLease = time.Minute
	DefaultBatch = 32
	DefaultPoll  = time.Second
)

// parallel bounds how many entries one round delivers at once.
const parallel = 8

// Config is what a Worker needs.
type Config struct {
	// Outbox is the store's outbox the worker drains.
	Outbox store.Outbox
	// Endpoints receive every event they subscribe to, each its own
	// delivery.
	Endpoints []Endpoint
	// Emit, when set, is called once per event (on its first delivery
	// round, best effort) with its type and body: the Caddy event.
	Emit func(ctx context.Context, eventType string, body Body)
	// Now is the clock (default time.Now); Jitter returns a number in
	// [0, 1) for the retry schedule (default math/rand).
	Now    func() time.Time
	Jitter func() float64
	// Lease is how long a claim holds an entry (default DefaultLease): an
	// entry not settled by then, because its worker died, is delivered
	// again by another.
	Lease time.Duration
	// Batch is how many entries one round claims (default DefaultBatch);
	// Poll how often Run looks for due entries (default DefaultPoll).
	Batch int
	Poll  time.Duration
	// Logger logs failed deliveries (never a secret or a body).
	Logger *zap.Logger
	// Observe, when set, counts each attempt by outcome: delivered,
	// retry (failed, to be tried again) or failed (for good).
	Observe func(outcome string)
}

// Worker delivers the outbox's entries. Any number of workers, on any
// number of instances sharing a store, may run: each entry is delivered by
// the one that claimed it, and a licence's entries one after the other.
type Worker struct {
	cfg Config
}

// NewWorker returns a worker with cfg's defaults filled in.
func NewWorker(cfg Config) *Worker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Worker{cfg: cfg}
}

// Run delivers due entries every Poll until ctx ends, then returns nil. A
// round that fails (the store is down) is tried again at the next poll.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Poll)
	defer t.Stop()
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.cfg.Logger.Warn("delivering webhooks", zap.Error(err))
			}
			if err != nil || n == 0 {
				break // caught up: wait for the next poll
			}
			// A settled entry may have made its licence's next one due:
			// look again at once.
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce claims one batch of due entries, delivers them and settles each;
// it returns how many it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	es, err := w.cfg.Outbox.ClaimOutbox(ctx, w.cfg.Now(), w.cfg.Lease, w.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	var mu sync.Mutex
	var firstErr error
	for _, e := range es {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := w.deliver(ctx, e); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(es), firstErr
}

// deliver makes one delivery round of a claimed entry: each endpoint that
// wants it and does not have it yet is sent it once; then the entry is
// settled delivered, pending (retry at the schedule's next attempt) or
// failed.
func (w *Worker) deliver(ctx context.Context, e store.OutboxEntry) error {
	body := BodyOf(e.Event)
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	// An entry with targets has had a round (one stored before Emitted
	// was, and retried since, has no other trace of it).
	if !e.Emitted && e.Attempts == 0 && len(e.Targets) == 0 && w.cfg.Emit != nil {
		w.cfg.Emit(ctx, e.Event.Action, body)
	}
	e.Emitted = true // kept through an admin retry, which zeroes Attempts
	if e.Targets == nil {
		e.Targets = map[string]string{}
	}
	rekeyTargets(e.Targets)
	msg := Message{ID: MessageID(e.ID), Timestamp: w.cfg.Now(), Body: raw}
	var retryAfter time.Duration
	var lastErr error
	waiting := 0
	for i := range w.cfg.Endpoints {
		ep := &w.cfg.Endpoints[i]
		if !ep.Wants(e.Event.Action) {
			continue
		}
		id := ep.TargetID()
		switch e.Targets[id] {
		case store.OutboxDelivered, store.OutboxFailed:
			continue
		}
		res := Send(ctx, ep.Client, ep.URL, msg, ep.Secrets)
		if res.Delivered {
			e.Targets[id] = store.OutboxDelivered
			w.observe("delivered")
			continue
		}
		e.Targets[id] = store.OutboxPending
		waiting++
		retryAfter = max(retryAfter, res.RetryAfter)
		lastErr = res.Err
	}
	if ctx.Err() != nil {
		return nil // stopping: the claim lapses and the round is made again
	}
	now := w.cfg.Now()
	e.Attempts++
	e.LastError = ""
	switch next, ok := NextAttempt(now, e.Attempts, retryAfter, w.cfg.Jitter()); {
	case waiting == 0:
		e.Status, e.DoneAt = store.OutboxDelivered, now
	case ok:
		e.Status, e.NextAttemptAt = store.OutboxPending, next
		e.LastError = errText(lastErr)
		for range waiting {
			w.observe("retry")
		}
	default:
		e.Status, e.DoneAt = store.OutboxFailed, now
		e.LastError = errText(lastErr)
		for id, st := range e.Targets {
			if st == store.OutboxPending {
				e.Targets[id] = store.OutboxFailed
				w.observe("failed")
			}
		}
		w.cfg.Logger.Warn("webhook delivery failed for good", zap.String("id", e.ID),
			zap.String("type", e.Event.Action), zap.Int("attempts", e.Attempts), zap.Error(lastErr))
	}
	if err := w.cfg.Outbox.SettleOutbox(context.WithoutCancel(ctx), e); err != nil && !errors.Is(err, store.ErrNotClaimed) {
		return err
	}
	return nil
}

func (w *Worker) observe(outcome string) {
	if w.cfg.Observe != nil {
		w.cfg.Observe(outcome)
	}
}

// errText bounds a delivery error kept with an entry.
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// MessageID is the webhook-id of an outbox entry, the same for every
// attempt and every endpoint.
func MessageID(entryID string) string { return "msg_" + entryID }

// Body is an event as sent: {"type","timestamp","data"}.
type Body struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is an event's facts: ids, names, who and why. Never a purchase code,
// a token, a secret or an address.
type Data struct {
	LicenseID      string `json:"license_id,omitempty"`
	InstallationID string `json:"installation_id,omitempty"`
	Product        string `json:"product,omitempty"`
	Source         string `json:"source,omitempty"`
	Actor          string `json:"actor,omitempty"`
	Reason         string `json:"reason,omitempty"`
	// Detail is the event's fact in words: the domain, "old -> new" for a
	// move, the new key id, the new expiry.
	Detail string `json:"detail,omitempty"`
	// AuditID is the audit entry's id when the store knows it.
	AuditID string `json:"audit_id,omitempty"`
}

// BodyOf returns the body of an audited event.
func BodyOf(ev store.AuditEvent) Body {
	return Body{Type: ev.Action, Timestamp: ev.At.UTC(), Data: Data{
		LicenseID: ev.LicenseID, InstallationID: ev.InstallationID, Product: ev.Product, Source: ev.Source,
		Actor: ev.Actor, Reason: ev.Reason, Detail: ev.Detail, AuditID: ev.ID,
	}}
}

// Map returns the body's data as a map, for a Caddy event.
func (b Body) Map() map[string]any {
	raw, _ := json.Marshal(b.Data)
	m := map[string]any{}
	_ = json.Unmarshal(raw, &m)
	m["type"] = b.Type
	m["timestamp"] = b.Timestamp.Format(time.RFC3339Nano)
	return m
}

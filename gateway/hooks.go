package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// Store webhooks (SPEC section 7, "the store tells us"): a verified hook
// is a hint, never the truth. It names a licence, and the licence is
// queued for a check now in the store (Scheduler.AskCheck), which the
// recheck worker serves before the due index, by the schedule's rules.
// Nothing about the licence changes until the source's API answers, so a
// forged or replayed hook can at most cause one recheck.

// Outcomes of a store webhook (HookResult.Outcome, and the metric's).
const (
	HookQueued    = "queued"    // verified; its licences are queued for a check
	HookIgnored   = "ignored"   // verified; names no licence served here
	HookReplayed  = "replayed"  // verified; a delivery already served
	HookRefused   = "refused"   // a signature, token or time that does not hold
	HookMalformed = "malformed" // verified, but unreadable
)

// hookReplayTTL is how long a served delivery is remembered: longer than
// any vendor retries one (Shopify: 48 hours, Lemon Squeezy and Keygen
// less), so a retry of a delivery already queued queues nothing.
const hookReplayTTL = 72 * time.Hour

// maxHookLicences bounds the licences one hook may queue: a hook names one
// purchase, which a few licences at most share.
const maxHookLicences = 10

// hookAlertEvery is how often a source's refused webhooks are audited: a
// rotated secret refuses every hook, and one event says so.
const hookAlertEvery = time.Hour

// HookResult is what a store webhook did.
type HookResult struct {
	Outcome string
	// Queued counts the licences queued for a check.
	Queued int
}

// HookSources lists the sources whose webhooks are checked here, sorted.
func (s *Service) HookSources() []string {
	names := make([]string, 0, len(s.cfg.Hooks))
	for name := range s.cfg.Hooks {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ReceiveHook serves one store webhook for source: verify it, refuse a
// replay, find the licences it names and queue each for a check. A hook
// whose signature, token or time does not hold is 401 webhook_refused; one
// that was verified but cannot be read 400 malformed_request; a source
// without a webhook check here 404 not_found; a store failure 503, so the
// vendor delivers it again. Everything else is 200, with what was done.
func (s *Service) ReceiveHook(ctx context.Context, source string, req upstreams.HookRequest) (res HookResult, err error) {
	defer func() {
		if res.Outcome != "" {
			s.obs.StoreHook(source, res.Outcome)
		}
	}()
	check := s.cfg.Hooks[source]
	if check == nil {
		return HookResult{}, &Error{Code: CodeNotFound, Detail: "No store webhooks are received for this source."}
	}
	hook, err := check.Verify(req, s.now())
	switch {
	case errors.Is(err, upstreams.ErrHookSignature), errors.Is(err, upstreams.ErrHookStale):
		s.noteHookRefused(ctx, source)
		return HookResult{Outcome: HookRefused}, &Error{Code: CodeWebhookRefused, Detail: "The webhook's signature, secret or time does not hold.", Cause: err}
	case errors.Is(err, upstreams.ErrHookMalformed):
		return HookResult{Outcome: HookMalformed}, &Error{Code: CodeMalformedRequest, Detail: "The webhook could not be read.", Cause: err}
	case errors.Is(err, upstreams.ErrHookIgnored):
		s.log.Debug("store webhook names no licence", zap.Stringer("hook", hook))
		return HookResult{Outcome: HookIgnored}, nil
	case err != nil:
		return HookResult{Outcome: HookMalformed}, &Error{Code: CodeMalformedRequest, Detail: "The webhook could not be read.", Cause: err}
	}
	delivery := s.hookDelivery(source, hook, req.Body)
	switch _, err := s.cfg.Store.Idempotent(ctx, delivery); {
	case err == nil:
		s.log.Debug("store webhook delivered again: ignored", zap.Stringer("hook", hook))
		return HookResult{Outcome: HookReplayed}, nil
	case !errors.Is(err, store.ErrNotFound):
		return HookResult{}, storeUnavailable(err)
	}
	ids, err := s.hookLicences(ctx, source, hook)
	if err != nil {
		return HookResult{}, storeUnavailable(err)
	}
	now := s.now()
	for _, id := range ids {
		if err := s.cfg.Store.AskCheck(ctx, id, now); err != nil {
			return HookResult{}, storeUnavailable(err)
		}
	}
	if len(ids) > 0 {
		s.recheck.hint(now)
	}
	// Remembered once queued: a failure here only lets a retry queue
	// the check again, which the hint may cost anyway.
	if _, err := s.cfg.Store.PutIdempotent(ctx, delivery, []byte(HookQueued), hookReplayTTL); err != nil {
		s.log.Warn("remembering a store webhook's delivery failed", zap.Stringer("hook", hook), zapErr(err))
	}
	if len(ids) == 0 {
		s.log.Debug("store webhook names no licence served here", zap.Stringer("hook", hook))
		return HookResult{Outcome: HookIgnored}, nil
	}
	s.log.Info("store webhook: licence queued for a check", zap.Stringer("hook", hook), zap.Strings("license_ids", ids))
	return HookResult{Outcome: HookQueued, Queued: len(ids)}, nil
}

// hookDelivery is the idempotency key a delivery is remembered by: the
// vendor's delivery id, else the body's hash (Lemon Squeezy and Gumroad
// send no id; a retry sends the same body), keyed so that a raw id never
// becomes a store key.
func (s *Service) hookDelivery(source string, hook upstreams.Hook, body []byte) string {
	id := "id:" + hook.DeliveryID
	if hook.DeliveryID == "" {
		sum := sha256.Sum256(body)
		id = "body:" + hex.EncodeToString(sum[:])
	}
	return "hook_" + s.cfg.Master.Hash("hook", source, id)
}

// hookLicences finds the licences a hook names that are served here and
// rechecked: by its key (the licence id is the key's keyed hash) and by
// the vendor's ids (the store's lookup terms), at most maxHookLicences.
func (s *Service) hookLicences(ctx context.Context, source string, hook upstreams.Hook) ([]string, error) {
	var ids []string
	if src := s.cfg.Sources[source]; src != nil && hook.Key != "" {
		if canon, err := src.CanonicalKey(hook.Key); err == nil {
			ids = append(ids, s.licenseID(source, canon))
		}
	}
	for _, ref := range hook.VendorIDs {
		found, err := s.cfg.Store.Lookup(ctx, store.RefTerm(source, ref.Kind, ref.ID))
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	served := ids[:0]
	for _, id := range ids {
		if len(served) == maxHookLicences {
			break
		}
		ok, err := s.checksHooks(ctx, source, id)
		if err != nil {
			return nil, err
		}
		if ok {
			served = append(served, id)
		}
	}
	return served, nil
}

// checksHooks says whether a licence is one a hook may queue: stored, of
// this source, and of a product served here that is rechecked.
func (s *Service) checksHooks(ctx context.Context, source, id string) (bool, error) {
	st, err := s.cfg.Store.LicenseState(ctx, id)
	if err != nil {
		return false, err
	}
	lic := st.License
	if lic == nil || lic.Source != source || s.product(lic.Product) == nil {
		return false, nil
	}
	return s.recheckRules(lic.Product).Mode != policy.RecheckOff, nil
}

// noteHookRefused audits a source's refused webhooks, at most once per
// hookAlertEvery on this instance: a secret rotated at the store and not
// here refuses them all, and the author must hear of it once, not per hook.
func (s *Service) noteHookRefused(ctx context.Context, source string) {
	now := s.now()
	s.credMu.Lock()
	last, seen := s.hookAlerted[source]
	if seen && now.Sub(last) < hookAlertEvery {
		s.credMu.Unlock()
		return
	}
	if s.hookAlerted == nil {
		s.hookAlerted = map[string]time.Time{}
	}
	s.hookAlerted[source] = now
	s.credMu.Unlock()
	s.event(ctx, nil, Event{At: now, Actor: ActorGateway, Action: store.AuditSourceWebhookRefused, Source: source,
		Reason: fmt.Sprintf("a %s webhook failed its signature, secret or time check: check the webhook secret configured for it", source)})
}

// serveAsks serves the queued asks (store webhooks) before the due index:
// each is checked by the schedule's rules, under the lease's token, and
// taken off the queue once its check is done. An ask whose check fails
// stays queued for the next step.
func (s *Service) serveAsks(ctx context.Context, token int64) (n int, fenced bool, err error) {
	asks, err := s.cfg.Store.Asked(ctx, RecheckBatch)
	if err != nil {
		return 0, false, fmt.Errorf("reading queued checks: %w", err)
	}
	for _, a := range asks {
		if token, err = s.recheck.hold(ctx); err != nil || token == 0 {
			return n, false, err
		}
		_, err := s.recheckLicense(ctx, a.LicenseID, token, askedBySchedule)
		switch {
		case errors.Is(err, store.ErrFenced):
			return n, true, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return n, false, err
		}
		if err := s.cfg.Store.DoneAsk(ctx, a.LicenseID, a.At); err != nil {
			return n, false, fmt.Errorf("dequeueing a served check: %w", err)
		}
		n++
	}
	return n, false, nil
}

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
	// HookStoreFailed: the store failed (503); the vendor delivers it again.
	HookStoreFailed = "store_unavailable"
)

// hookReplayTTL is how long a served delivery is remembered: longer than
// any vendor retries one (Shopify: 48 hours, Lemon Squeezy and Keygen
// less), so a retry of a delivery already queued queues nothing.
const hookReplayTTL = 72 * time.Hour

// askAttempts is how many steps in a row may fail to check a queued
// licence before its ask is dropped (logged): one licence whose check
// keeps failing must not keep the queue from the others for ever.
const askAttempts = 5

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
		// a check's error of no known kind: refuse it as unreadable
		return HookResult{Outcome: HookRefused}, &Error{Code: CodeWebhookRefused, Detail: "The webhook could not be verified.", Cause: err}
	}
	deliveries := s.hookDeliveries(source, hook, req.Body)
	replayed, err := s.seenDelivery(ctx, deliveries)
	switch {
	case err != nil:
		return HookResult{Outcome: HookStoreFailed}, storeUnavailable(err)
	case replayed:
		s.log.Debug("store webhook delivered again: ignored", zap.Stringer("hook", hook))
		return HookResult{Outcome: HookReplayed}, nil
	}
	ids, err := s.hookLicences(ctx, source, hook)
	if err != nil {
		return HookResult{Outcome: HookStoreFailed}, storeUnavailable(err)
	}
	now := s.now()
	for _, id := range ids {
		if err := s.cfg.Store.AskCheck(ctx, id, now); err != nil {
			return HookResult{Outcome: HookStoreFailed}, storeUnavailable(err)
		}
	}
	if len(ids) > 0 {
		s.recheck.hint(now)
	}
	// Remembered once queued: a failure here, or a duplicate delivered
	// at the same moment, only costs the licence one more check.
	for _, d := range deliveries {
		if _, err := s.cfg.Store.PutIdempotent(ctx, d, []byte(HookQueued), hookReplayTTL); err != nil {
			s.log.Warn("remembering a store webhook's delivery failed", zap.Stringer("hook", hook), zapErr(err))
		}
	}
	if len(ids) == 0 {
		s.log.Debug("store webhook names no licence served here", zap.Stringer("hook", hook))
		return HookResult{Outcome: HookIgnored}, nil
	}
	s.log.Info("store webhook: licence queued for a check", zap.Stringer("hook", hook), zap.Strings("license_ids", ids))
	return HookResult{Outcome: HookQueued, Queued: len(ids)}, nil
}

// hookDeliveries are the idempotency keys a delivery is remembered by:
// its body's hash, and the vendor's delivery id when it sends one. The
// body is what the signature covers: a delivery id in a header that is not
// signed (Shopify's) can be changed by whoever replays a captured body, so
// the body alone must already make it a replay. Keyed, so that a raw id
// never becomes a store key.
func (s *Service) hookDeliveries(source string, hook upstreams.Hook, body []byte) []string {
	sum := sha256.Sum256(body)
	keys := []string{"hook_" + s.cfg.Master.Hash("hook", source, "body:"+hex.EncodeToString(sum[:]))}
	if hook.DeliveryID != "" {
		keys = append(keys, "hook_"+s.cfg.Master.Hash("hook", source, "id:"+hook.DeliveryID))
	}
	return keys
}

// seenDelivery says whether any of a delivery's keys was served already.
func (s *Service) seenDelivery(ctx context.Context, keys []string) (bool, error) {
	for _, k := range keys {
		switch _, err := s.cfg.Store.Idempotent(ctx, k); {
		case err == nil:
			return true, nil
		case !errors.Is(err, store.ErrNotFound):
			return false, err
		}
	}
	return false, nil
}

// hookLicences finds the licences a hook names that are served here and
// rechecked: by its key (the licence id is the key's keyed hash) and by
// the vendor's ids (the store's lookup terms, each at most
// store.MaxLookup licences: an order of many keys is queued whole).
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
		Reason: fmt.Sprintf("a %s webhook failed its signature, secret or time check; if the store's webhooks keep failing, its secret may have changed there", source)})
}

// serveAsks serves the queued asks (store webhooks) before the due index:
// each is checked by the schedule's rules, under the lease's token, and
// taken off the queue once its check is done. A check that fails leaves
// its ask queued for the next step (dropped after askAttempts failures);
// stop says the lease is gone, so the step must claim nothing more.
func (s *Service) serveAsks(ctx context.Context) (n int, stop bool, err error) {
	asks, err := s.cfg.Store.Asked(ctx, RecheckBatch)
	if err != nil {
		return 0, false, fmt.Errorf("reading queued checks: %w", err)
	}
	for _, a := range asks {
		token, err := s.recheck.hold(ctx)
		if err != nil || token == 0 {
			return n, true, err
		}
		_, err = s.recheckLicense(ctx, a.LicenseID, token, askedByStore)
		switch {
		case errors.Is(err, store.ErrFenced):
			s.log.Info("recheck: a later lease holder took over", zap.String("license_id", a.LicenseID))
			s.recheck.drop(token)
			return n, true, nil
		case ctx.Err() != nil:
			return n, true, nil // stopping: the ask stays queued
		case err != nil && !errors.Is(err, ErrNotFound):
			if !s.recheck.askFailed(a.LicenseID) {
				s.log.Warn("recheck: a queued check failed; kept for the next step", zap.String("license_id", a.LicenseID), zapErr(err))
				continue
			}
			s.log.Error("recheck: a queued check keeps failing; dropped (its schedule still checks it)", zap.String("license_id", a.LicenseID), zapErr(err))
		}
		if err := s.cfg.Store.DoneAsk(ctx, a.LicenseID, a.At); err != nil {
			return n, false, fmt.Errorf("dequeueing a served check: %w", err)
		}
		s.recheck.askServed(a.LicenseID)
		n++
	}
	return n, false, nil
}

// askFailed counts a failed check of a queued licence, and says whether
// it has failed askAttempts times in a row.
func (w *rechecker) askFailed(licenseID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.askFailures == nil {
		w.askFailures = map[string]int{}
	}
	w.askFailures[licenseID]++
	return w.askFailures[licenseID] >= askAttempts
}

// askServed forgets a served ask's failures.
func (w *rechecker) askServed(licenseID string) {
	w.mu.Lock()
	delete(w.askFailures, licenseID)
	w.mu.Unlock()
}

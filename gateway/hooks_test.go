package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/digitaldownloads"
)

// Store webhooks (SPEC section 7, "the store tells us"; issue 24), on the
// sim's fake clock and Lemon Squeezy counterpart, both stores.

// simHookSecret is the sim's Lemon Squeezy webhook signing secret.
const simHookSecret = "sim-hook-secret"

// lsHook is a Lemon Squeezy webhook request with body, signed with secret.
func lsHook(secret, body string) upstreams.HookRequest {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	h := http.Header{}
	h.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/json")
	return upstreams.HookRequest{Method: http.MethodPost, Target: "/hooks/lemonsqueezy", Host: "gw.example.com", Header: h, Body: []byte(body)}
}

// lsRefund is an order_refunded webhook body naming order.
func lsRefund(order string) string {
	return `{"meta":{"event_name":"order_refunded","test_mode":false},"data":{"type":"orders","id":"` + order +
		`","attributes":{"status":"refunded","refunded":true}}}`
}

// lsKeyUpdated is a license_key_updated webhook body naming key.
func lsKeyUpdated(key string) string {
	return `{"meta":{"event_name":"license_key_updated"},"data":{"type":"license-keys","id":"991","attributes":{"key":"` +
		key + `","status":"disabled","order_id":"424242"}}}`
}

// receive serves a hook, failing the test on an error unless want is it.
func (s *sim) receive(req upstreams.HookRequest) (HookResult, error) {
	s.t.Helper()
	return s.svc.ReceiveHook(context.Background(), "lemonsqueezy", req)
}

// TestStoreHookRechecksTheLicenceItNames: a refund webhook naming the
// licence's order (recorded at activation) queues the licence; the worker
// checks it at its next step, before anything scheduled, and the
// source's answer flags it (manual mode); a replay of the same delivery
// queues nothing; a hook for an order nobody holds is answered and
// ignored. The hook changed nothing by itself.
func TestStoreHookRechecksTheLicenceItNames(t *testing.T) {
	for name, open := range simStores(t) {
		t.Run(name, func(t *testing.T) { storeHookRechecks(t, open(t)) })
	}
}

func storeHookRechecks(t *testing.T, st store.Store) {
	s := newSim(t, st, policy.RecheckManual, "gw_a")
	key := uuidKey('1', 1)
	s.buy("l1", "lemonsqueezy", key, truth{status: "active", id: "31", order: "5150"})
	s.buy("l2", "lemonsqueezy", uuidKey('1', 2), truth{status: "active", id: "32", order: "5151"})
	if refs := s.license("l1").Refs; len(refs) != 2 {
		t.Fatalf("l1's refs = %v, want its licence key id and order", refs)
	}
	s.drain(s.svc) // nothing due: the first check is hours away
	ls := s.vendors["lemonsqueezy"]
	before := ls.asked[key]

	ls.set(key, func(tr *truth) { tr.status = "disabled" }) // the refund disables the key
	res, err := s.receive(lsHook(simHookSecret, lsRefund("5150")))
	if err != nil || res.Outcome != HookQueued || res.Queued != 1 {
		t.Fatalf("refund hook = %+v, %v; want one licence queued", res, err)
	}
	if got := s.license("l1"); got.Status != store.LicenseActive {
		t.Fatalf("the hook changed the licence by itself: %s", got.Status)
	}
	if n := s.drain(s.svc); n != 1 {
		t.Fatalf("the worker's step checked %d licences, want the one queued", n)
	}
	if got := s.license("l1"); got.Status != store.LicenseFlagged {
		t.Errorf("after the queued check, l1 is %s, want flagged (manual mode)", got.Status)
	}
	if got := s.license("l2"); got.Status != store.LicenseActive || ls.asked[uuidKey('1', 2)] != 1 {
		t.Errorf("l2 (another order) is %s, asked %d times; want active and asked only at activation", got.Status, ls.asked[uuidKey('1', 2)])
	}
	if got := ls.asked[key] - before; got != 1 {
		t.Errorf("the source was asked %d times about l1 after the hook, want 1", got)
	}

	// the same delivery again (the vendor retries): answered, nothing queued
	res, err = s.receive(lsHook(simHookSecret, lsRefund("5150")))
	if err != nil || res.Outcome != HookReplayed {
		t.Fatalf("replayed hook = %+v, %v; want replayed", res, err)
	}
	if n := s.drain(s.svc); n != 0 {
		t.Errorf("after a replay the worker checked %d licences, want none", n)
	}
	res, err = s.receive(lsHook(simHookSecret, lsRefund("999")))
	if err != nil || res.Outcome != HookIgnored {
		t.Errorf("a hook for an order nobody holds = %+v, %v; want ignored", res, err)
	}
}

// TestForgedHookIsOnlyAHint: a correctly signed hook that claims a
// refund while the source says the licence is valid costs one recheck
// and changes nothing; a hook naming the key (not the order) finds the
// licence too.
func TestForgedHookIsOnlyAHint(t *testing.T) {
	for name, open := range simStores(t) {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, open(t), policy.RecheckAuto, "gw_a")
			key := uuidKey('2', 1)
			s.buy("l1", "lemonsqueezy", key, truth{status: "active", id: "41", order: "6160"})
			ls := s.vendors["lemonsqueezy"]
			before := ls.asked[key]
			res, err := s.receive(lsHook(simHookSecret, lsKeyUpdated(key)))
			if err != nil || res.Outcome != HookQueued {
				t.Fatalf("hook naming the key = %+v, %v; want queued", res, err)
			}
			s.drain(s.svc)
			if got := ls.asked[key] - before; got != 1 {
				t.Errorf("source asked %d times after the hook, want 1", got)
			}
			lic := s.license("l1")
			if lic.Status != store.LicenseActive || !s.serves("l1") {
				t.Errorf("after a forged refund the licence is %s; want active and served", lic.Status)
			}
		})
	}
}

// TestRefusedHooks: a bad signature is refused and changes nothing, and a
// source whose hooks keep failing is audited once an hour, not per hook;
// a hook the check cannot read is malformed; a source without a webhook
// secret receives none.
func TestRefusedHooks(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	key := uuidKey('3', 1)
	s.buy("l1", "lemonsqueezy", key, truth{status: "active", order: "7170"})
	for range 3 {
		res, err := s.receive(lsHook("rotated-secret", lsRefund("7170")))
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeWebhookRefused || res.Outcome != HookRefused {
			t.Fatalf("badly signed hook = %+v, %v; want webhook_refused", res, err)
		}
	}
	if asks, _ := s.store.Asked(context.Background(), 10); len(asks) != 0 {
		t.Errorf("a refused hook queued %v", asks)
	}
	alerts := func() int {
		n := 0
		for _, ev := range s.audit() {
			if ev.Action == store.AuditSourceWebhookRefused && ev.Source == "lemonsqueezy" {
				n++
			}
		}
		return n
	}
	if n := alerts(); n != 1 {
		t.Errorf("%d source.webhook_refused events for three refusals within the hour, want 1", n)
	}
	s.clock.Advance(hookAlertEvery + time.Second)
	_, _ = s.receive(lsHook("rotated-secret", lsRefund("7170")))
	if n := alerts(); n != 2 {
		t.Errorf("%d source.webhook_refused events an hour on, want 2", n)
	}

	res, err := s.receive(lsHook(simHookSecret, `{"meta":`))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeMalformedRequest || res.Outcome != HookMalformed {
		t.Errorf("unreadable signed hook = %+v, %v; want malformed_request", res, err)
	}
	_, err = s.svc.ReceiveHook(context.Background(), "envato", lsHook(simHookSecret, lsRefund("7170")))
	if !errors.As(err, &e) || e.Code != CodeNotFound {
		t.Errorf("hook for a source without a webhook secret: %v; want not_found", err)
	}
	if got := s.license("l1"); got.Status != store.LicenseActive {
		t.Errorf("refused hooks left the licence %s", got.Status)
	}
}

// TestQueuedCheckSurvivesAFailedStep: an ask whose check could not be
// made (the store failed mid-step) stays queued, and the next step serves
// it; a licence of a product whose recheck is off is not queued.
func TestQueuedCheckSurvivesAFailedStep(t *testing.T) {
	st := &failingAsks{Store: openEmbedded(t)}
	s := newSim(t, st, policy.RecheckManual, "gw_a")
	key := uuidKey('4', 1)
	s.buy("l1", "lemonsqueezy", key, truth{status: "active", order: "8180"})
	if res, err := s.receive(lsHook(simHookSecret, lsRefund("8180"))); err != nil || res.Outcome != HookQueued {
		t.Fatalf("hook = %+v, %v", res, err)
	}
	st.failDone = true
	if _, err := s.svc.RecheckOnce(context.Background()); err == nil {
		t.Fatal("a step whose dequeue failed reported no error")
	}
	asks, err := st.Asked(context.Background(), 10)
	if err != nil || len(asks) != 1 || asks[0].LicenseID != s.ids["l1"] {
		t.Fatalf("after a failed step the queue is %+v, %v; want l1 still queued", asks, err)
	}
	st.failDone = false
	if n := s.drain(s.svc); n != 1 {
		t.Errorf("the next step checked %d, want the queued licence", n)
	}
	if asks, _ := st.Asked(context.Background(), 10); len(asks) != 0 {
		t.Errorf("after it was served the queue holds %+v", asks)
	}

	off := newSim(t, openEmbedded(t), policy.RecheckOff, "gw_b")
	off.buy("l1", "lemonsqueezy", key, truth{status: "active", order: "8180"})
	if res, err := off.receive(lsHook(simHookSecret, lsRefund("8180"))); err != nil || res.Outcome != HookIgnored {
		t.Errorf("hook for a product with recheck off = %+v, %v; want ignored", res, err)
	}
}

// failingAsks fails DoneAsk while failDone is set, and every write of
// licence failUpdate.
type failingAsks struct {
	store.Store
	failDone   bool
	failUpdate string
}

func (f *failingAsks) UpdateLicense(ctx context.Context, id string, fn store.UpdateFunc) (*store.LicenseState, error) {
	if id == f.failUpdate {
		return nil, errors.New("decoding licence state: unexpected end of JSON input")
	}
	return f.Store.UpdateLicense(ctx, id, fn)
}

func (f *failingAsks) DoneAsk(ctx context.Context, id string, at time.Time) error {
	if f.failDone {
		return fmt.Errorf("dequeueing: %w", store.ErrUnavailable)
	}
	return f.Store.DoneAsk(ctx, id, at)
}

// TestShopifyReplayWithANewEventID: Shopify signs the body only, so a
// captured delivery sent again with another (unsigned) event id is still a
// replay.
func TestShopifyReplayWithANewEventID(t *testing.T) {
	s := newSim(t, openEmbedded(t), policy.RecheckManual, "gw_a")
	const secret = "shopify-hook-secret"
	dd, err := digitaldownloads.NewHooks(secret)
	if err != nil {
		t.Fatal(err)
	}
	s.svc.cfg.Hooks["digitaldownloads"] = dd
	body := `{"id":890,"order_id":4242,"created_at":"2026-12-07T12:00:00-05:00","note":"refund","test":false}`
	send := func(eventID string) HookResult {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		h := http.Header{}
		h.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		h.Set("X-Shopify-Topic", "refunds/create")
		h.Set("X-Shopify-Event-Id", eventID)
		res, err := s.svc.ReceiveHook(context.Background(), "digitaldownloads", upstreams.HookRequest{
			Method: http.MethodPost, Target: "/hooks/digitaldownloads", Host: "gw.example.com", Header: h, Body: []byte(body)})
		if err != nil {
			t.Fatalf("hook with event id %s: %v", eventID, err)
		}
		return res
	}
	if res := send("evt-1"); res.Outcome != HookIgnored {
		t.Fatalf("first delivery = %+v, want ignored (nobody holds the order)", res)
	}
	if res := send("evt-2"); res.Outcome != HookReplayed {
		t.Errorf("the same body with a new event id = %+v, want replayed", res)
	}
}

// TestStoreHookAnswersDoNotTripTheGuard: a hook's check does not count in
// its source's guard (a burst of real refunds is no sign of a source gone
// wrong); the schedule's checks do.
func TestStoreHookAnswersDoNotTripTheGuard(t *testing.T) {
	refund := policy.CheckResult{Outcome: policy.CheckInvalid, Reason: "refunded"}
	for _, counted := range []bool{false, true} {
		w := &rechecker{guards: map[string]*sourceGuard{}}
		now := simStart
		var held bool
		for i := range 3 * policy.DefaultGuardMin {
			held, _ = w.observe("lemonsqueezy", refund, now.Add(time.Duration(i)*time.Second), counted)
		}
		if held != counted {
			t.Errorf("after %d definitive refunds counted=%v the guard holds %v, want %v", 3*policy.DefaultGuardMin, counted, held, counted)
		}
	}
}

// TestQueuedCheckThatKeepsFailing: a queued licence whose check fails
// does not stop the worker from serving the due index, and after
// askAttempts steps its ask is dropped.
func TestQueuedCheckThatKeepsFailing(t *testing.T) {
	st := &failingAsks{Store: openEmbedded(t)}
	s := newSim(t, st, policy.RecheckManual, "gw_a")
	s.buy("l1", "lemonsqueezy", uuidKey('5', 1), truth{status: "active", order: "9190"})
	s.buy("l2", "lemonsqueezy", uuidKey('5', 2), truth{status: "active", order: "9191"})
	if res, err := s.receive(lsHook(simHookSecret, lsRefund("9190"))); err != nil || res.Outcome != HookQueued {
		t.Fatalf("hook = %+v, %v", res, err)
	}
	// l1's schedule is far off: only its queued check is made (and fails)
	if _, err := st.Store.UpdateLicense(context.Background(), s.ids["l1"], func(cur *store.LicenseState) (*store.LicenseState, error) {
		cur.License.NextCheckAt = simStart.AddDate(0, 1, 0)
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	st.failUpdate = s.ids["l1"]
	s.clock.Advance(s.license("l2").NextCheckAt.Sub(s.clock.Now()) + time.Second) // l2 is due
	before := s.vendors["lemonsqueezy"].asked[uuidKey('5', 2)]
	if _, err := s.svc.RecheckOnce(context.Background()); err != nil {
		t.Fatalf("a step with a failing queued check: %v", err)
	}
	if got := s.vendors["lemonsqueezy"].asked[uuidKey('5', 2)] - before; got != 1 {
		t.Errorf("the due licence was checked %d times in that step, want 1", got)
	}
	for range askAttempts - 1 {
		if _, err := s.svc.RecheckOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if asks, _ := st.Asked(context.Background(), 10); len(asks) != 0 {
		t.Errorf("after %d failed steps the queue holds %+v, want it dropped", askAttempts, asks)
	}
}

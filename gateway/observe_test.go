package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// recordingObserver counts what the service reports, by label.
type recordingObserver struct {
	NopObserver
	mu        sync.Mutex
	decisions map[[2]string]int
	exchanges map[[2]string]int
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{decisions: map[[2]string]int{}, exchanges: map[[2]string]int{}}
}

func (o *recordingObserver) GateDecision(product, code string) {
	o.mu.Lock()
	o.decisions[[2]string{product, code}]++
	o.mu.Unlock()
}

func (o *recordingObserver) Exchange(endpoint, outcome string, _ time.Duration) {
	o.mu.Lock()
	o.exchanges[[2]string{endpoint, outcome}]++
	o.mu.Unlock()
}

// TestObserverCountsDecisionsAndExchanges: each endpoint is counted once
// per call by outcome, each gate decision by product and code.
func TestObserverCountsDecisionsAndExchanges(t *testing.T) {
	f := newFixture(t)
	obs := newRecordingObserver()
	f.svc.obs = obs
	ctx := context.Background()
	a, err := f.svc.ActivateIdempotent(ctx, "", ActivateRequest{Key: "KEY-1", Domain: "acme.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.ActivateIdempotent(ctx, "", ActivateRequest{Key: "KEY-1", Domain: "other.com"})
	wantCode(t, err, CodeActivationLimit)
	if _, err := f.admit(a.AccessToken); err != nil {
		t.Fatal(err)
	}
	_, err = f.admit("nonsense")
	wantCode(t, err, CodeInvalidToken)
	toks, err := f.svc.Refresh(ctx, a.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Deactivate(ctx, toks.AccessToken, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.admit(toks.AccessToken)
	wantCode(t, err, CodeInstallationInactive)
	want := map[[2]string]int{
		{EndpointActivate, OutcomeOK}: 1, {EndpointActivate, CodeActivationLimit}: 1,
		{EndpointRefresh, OutcomeOK}: 1, {EndpointDeactivate, OutcomeOK}: 1,
	}
	for k, n := range want {
		if obs.exchanges[k] != n {
			t.Errorf("exchanges %v = %d, want %d (all: %v)", k, obs.exchanges[k], n, obs.exchanges)
		}
	}
	wantDecisions := map[[2]string]int{
		{"p", OutcomeAdmitted}: 1, {"", CodeInvalidToken}: 1, {"p", CodeInstallationInactive}: 1,
	}
	for k, n := range wantDecisions {
		if obs.decisions[k] != n {
			t.Errorf("decisions %v = %d, want %d (all: %v)", k, obs.decisions[k], n, obs.decisions)
		}
	}
}

// TestHealthNamesTheStore: serving with the store up; not serving, naming
// the store, once it is closed.
func TestHealthNamesTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.svc.LoadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if h := f.svc.Health(ctx); !h.Serving || !h.Store.Reachable || len(h.Failing) != 0 || h.Sources["keys"] == "" {
		t.Fatalf("%+v", h)
	}
	// The outbox's pending entries, counted by the store.
	before := f.svc.Health(ctx).WebhookPending
	if before == nil {
		t.Fatal("webhook_pending unknown with the store up")
	}
	evs := []store.AuditEvent{{At: time.Now(), Actor: "admin", Action: store.AuditKeysRotated}, {At: time.Now(), Actor: "admin", Action: store.AuditKeysRotated}}
	if err := f.store.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if p := f.svc.Health(ctx).WebhookPending; p == nil || *p != *before+2 {
		t.Fatalf("webhook_pending after two events = %v, want %d", p, *before+2)
	}
	if bl := f.svc.Backlog(ctx); bl.WebhookPending == nil || *bl.WebhookPending != *before+2 {
		t.Fatalf("Backlog().WebhookPending = %v, want %d", bl.WebhookPending, *before+2)
	}
	if c, ok := f.store.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	h := f.svc.Health(ctx)
	if h.Serving || h.Store.Reachable || len(h.Failing) != 1 || h.Failing[0] != "store" {
		t.Fatalf("with the store closed: %+v", h)
	}
	if h.WebhookPending != nil {
		t.Errorf("webhook_pending with the store closed = %d, want unknown (nil)", *h.WebhookPending)
	}
}

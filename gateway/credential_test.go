package gateway

import (
	"context"
	"testing"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// A source refusing the author's credential is a source.credential_failing
// event: once per source per hour, however many activations run into it,
// and none for an outage that is not about the credential.
func TestCredentialFailingEvent(t *testing.T) {
	f := newFixture(t)
	failing := func() []store.AuditEvent {
		t.Helper()
		evs, err := f.store.Audit(context.Background(), store.AuditQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.AuditEvent
		for _, ev := range evs {
			if ev.Action == store.AuditSourceCredentialFailing {
				out = append(out, ev)
			}
		}
		return out
	}
	activate := func(key string) {
		t.Helper()
		_, err := f.svc.Activate(context.Background(), ActivateRequest{Key: key, Domain: "acme.com"})
		wantCode(t, err, CodeUpstreamUnavailable)
	}

	outage := upstreams.UnknownVerdict(&upstreams.StatusError{Status: 502})
	f.src.answer = &outage
	activate("KEY-0001")
	if evs := failing(); len(evs) != 0 {
		t.Fatalf("an outage raised %d credential events", len(evs))
	}

	refused := upstreams.UnknownVerdict(&upstreams.AuthorCredentialError{Source: "keys", Status: 401})
	f.src.answer = &refused
	for _, key := range []string{"KEY-0002", "KEY-0003", "KEY-0004"} {
		activate(key)
	}
	evs := failing()
	if len(evs) != 1 || evs[0].Source != "keys" || evs[0].Actor != ActorGateway {
		t.Fatalf("credential events %+v, want one for source keys", evs)
	}
	f.clock.Advance(credentialAlertEvery)
	activate("KEY-0005")
	if n := len(failing()); n != 2 {
		t.Fatalf("%d credential events an hour later, want 2", n)
	}
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// credentialAlertEvery bounds source.credential_failing events: while a
// source keeps refusing the author's credential, one event per source per
// hour (per instance), not one per activation or recheck that ran into it.
const credentialAlertEvery = time.Hour

// noteVerdict turns a source refusing the author's own credential (an
// expired Envato token, a revoked Keygen token) into a
// source.credential_failing event: every activation from that source
// answers 503 until the author fixes it, so the author must hear of it.
func (s *Service) noteVerdict(ctx context.Context, source string, v upstreams.Verdict) {
	var auth *upstreams.AuthorCredentialError
	if v.Outcome != upstreams.Unknown || !errors.As(v.Cause, &auth) {
		return
	}
	now := s.now()
	s.credMu.Lock()
	last, seen := s.credAlerted[source]
	if seen && now.Sub(last) < credentialAlertEvery {
		s.credMu.Unlock()
		return
	}
	if s.credAlerted == nil {
		s.credAlerted = map[string]time.Time{}
	}
	s.credAlerted[source] = now
	s.credMu.Unlock()
	s.event(ctx, nil, Event{At: now, Actor: ActorGateway, Action: store.AuditSourceCredentialFailing, Source: source,
		Reason: fmt.Sprintf("the source answered %d to the author's credentials; activations from it answer 503 until they are fixed", auth.Status)})
}

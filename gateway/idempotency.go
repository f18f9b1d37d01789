package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
)

// IdempotencyTTL is how long an Idempotency-Key's first answer is kept.
const IdempotencyTTL = 24 * time.Hour

const maxIdempotencyKey = 255

type idempotentAnswer struct {
	Fingerprint string           `json:"fingerprint"`
	Created     bool             `json:"created"`
	Activation  *Activation      `json:"activation,omitempty"`
	Addon       *AddonAttachment `json:"addon,omitempty"`
}

// ActivateIdempotent is Activate keyed by an installer's Idempotency-Key: a
// retry with the same key and request gets the first answer (tokens
// included, sealed at rest) instead of a second activation. The same key
// with a different request is refused.
func (s *Service) ActivateIdempotent(ctx context.Context, idemKey string, req ActivateRequest) (_ *Activation, err error) {
	ctx, done := s.observe(ctx, EndpointActivate)
	defer func() { done(err) }()
	if idemKey == "" {
		return s.Activate(ctx, req)
	}
	// The client's network is part of the request: another network sending
	// the same key (an installer with a constant Idempotency-Key, run by
	// a leaked code's holder) must not be handed the buyer's first answer.
	fp := s.cfg.Master.Hash("activate", req.Key, req.Domain, req.Product, req.Label, req.IP, policy.ClientNetwork(req.ClientIP))
	ans, err := s.idempotent(ctx, "activate", idemKey, req.Key, fp, func(ctx context.Context) (*idempotentAnswer, error) {
		a, err := s.Activate(ctx, req)
		if err != nil {
			return nil, err
		}
		return &idempotentAnswer{Created: a.Created, Activation: a}, nil
	})
	if err != nil {
		return nil, err
	}
	a := *ans.Activation // the waiters' own copy
	a.Created = ans.Created
	return &a, nil
}

// AttachAddonIdempotent is AttachAddon keyed by an Idempotency-Key, as
// ActivateIdempotent.
func (s *Service) AttachAddonIdempotent(ctx context.Context, idemKey string, req AddonRequest) (*AddonAttachment, error) {
	if idemKey == "" {
		return s.AttachAddon(ctx, req)
	}
	// The installation, not the token: an installer that lost the answer
	// and refreshed its token meanwhile retries with another one.
	cred, err := s.authenticate(ctx, req.Token)
	if err != nil {
		return nil, err
	}
	fp := s.cfg.Master.Hash("addons", cred.installationID, req.Key, req.Product, policy.ClientNetwork(req.ClientIP))
	ans, err := s.idempotent(ctx, "addons", idemKey, req.Key, fp, func(ctx context.Context) (*idempotentAnswer, error) {
		a, err := s.AttachAddon(ctx, req)
		if err != nil {
			return nil, err
		}
		return &idempotentAnswer{Created: a.Created, Addon: a}, nil
	})
	if err != nil || ans.Addon == nil {
		if err == nil {
			err = &Error{Code: CodeIdempotencyKeyReused, Detail: "This Idempotency-Key was already used for a different request."}
		}
		return nil, err
	}
	a := *ans.Addon
	a.Created = ans.Created
	return &a, nil
}

// idempotent runs do once per Idempotency-Key (scoped to the licence key
// and the operation) and keeps its answer, so a retry with the same key
// and request fingerprint fp gets the first answer, and one with another
// request is refused.
func (s *Service) idempotent(ctx context.Context, op, idemKey, licenseKey, fp string, do func(context.Context) (*idempotentAnswer, error)) (*idempotentAnswer, error) {
	if len(idemKey) > maxIdempotencyKey {
		return nil, Validation("Idempotency-Key", "is longer than 255 characters")
	}
	// Scoped to the licence key: an installer that sends a constant
	// Idempotency-Key cannot collide with another buyer's activation.
	id := s.cfg.Master.Hash("idempotency", licenseKey, idemKey)
	if op != "activate" {
		id = s.cfg.Master.Hash("idempotency", op, licenseKey, idemKey)
	}
	if ans, err := s.replay(ctx, id, fp); ans != nil || err != nil {
		return ans, err
	}
	// A retry that arrives while the first attempt is still at work (the
	// installer timed out) waits for its answer: doing the work twice
	// would re-activate, superseding the tokens the first answer holds.
	v, err, _ := s.flights.Do("idempotency|"+id+"|"+fp, func() (any, error) {
		return s.doOnce(context.WithoutCancel(ctx), id, fp, do)
	})
	if err != nil {
		return nil, err
	}
	return v.(*idempotentAnswer), nil
}

// doOnce runs do and keeps its answer under the idempotency id; when
// another instance kept one first, that one is answered.
func (s *Service) doOnce(ctx context.Context, id, fp string, do func(context.Context) (*idempotentAnswer, error)) (*idempotentAnswer, error) {
	if ans, err := s.replay(ctx, id, fp); ans != nil || err != nil {
		return ans, err // kept by the flight that ended as this one began
	}
	ans, err := do(ctx)
	if err != nil {
		return nil, err
	}
	ans.Fingerprint = fp
	raw, err := json.Marshal(ans)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Detail: "An internal error occurred.", Cause: err}
	}
	stored, err := s.cfg.Store.PutIdempotent(ctx, id, s.cfg.Master.Seal(raw, []byte(id)), IdempotencyTTL)
	if err != nil {
		s.log.Warn("storing idempotent answer failed", zapErr(err))
		return ans, nil // the change itself is recorded; a retry gets a 200 for it
	}
	return s.decodeAnswer(id, fp, stored)
}

func (s *Service) replay(ctx context.Context, id, fp string) (*idempotentAnswer, error) {
	sealed, err := s.cfg.Store.Idempotent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeUnavailable(err)
	}
	return s.decodeAnswer(id, fp, sealed)
}

func (s *Service) decodeAnswer(id, fp string, sealed []byte) (*idempotentAnswer, error) {
	raw, err := s.cfg.Master.Open(sealed, []byte(id))
	if err != nil {
		return nil, &Error{Code: CodeInternal, Detail: "An internal error occurred.", Cause: err}
	}
	var ans idempotentAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, &Error{Code: CodeInternal, Detail: "An internal error occurred.", Cause: err}
	}
	if ans.Fingerprint != fp {
		return nil, &Error{Code: CodeIdempotencyKeyReused, Detail: "This Idempotency-Key was already used for a different request."}
	}
	return &ans, nil
}

package upstreams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// RecheckRequest is the background recheck's question about a licence the
// gateway already stores: is it still good? Unlike an activation's Request
// it carries only what was recorded when the licence was activated, never a
// new installation's details, so that asking changes nothing at the vendor
// (SPEC section 7).
type RecheckRequest struct {
	// Key is the licence key in the source's canonical form.
	Key string
	// Product is the licence's product slug.
	Product string
	// Domain is the installation's recorded domain, for the sources that
	// bind one (CP store, AppTrovo): a domain they have not seen would take
	// a vendor activation slot. Empty when none was recorded.
	Domain string
	// IP is the installation's recorded IP address (CP store).
	IP string
	// VendorID is Record.VendorID as recorded at activation: the vendor's
	// own id of the licence (Keygen's licence id), for sources that read a
	// licence by id. Empty when the source recorded none.
	VendorID string
}

// Request is r as an activation-shaped question, for sources whose verify
// call is already free of side effects at the vendor.
func (r RecheckRequest) Request() Request {
	return Request{Key: r.Key, Product: r.Product, Domain: r.Domain, IP: r.IP}
}

// Rechecker is implemented by sources that can recheck a stored licence
// with a call that changes nothing at the vendor: no activation slot
// taken, no use counted, no webhook sent, no term started.
//
// Recheck answers like Verify. An Invalid verdict keeps its reason,
// including the reasons that describe the request rather than the licence
// (wrong_product, domain_not_allowed): the recheck policy treats those as
// unknown (policy.Definitive). A refused author credential is Unknown with
// an *AuthorCredentialError cause, as for Verify.
type Rechecker interface {
	Recheck(ctx context.Context, req RecheckRequest) Verdict
}

// ErrRecheckUnsupported is the cause of the Unknown verdict of a recheck
// the source cannot make without side effects, or cannot make with its
// configuration (a Keygen source without a token). No call was made, and
// the source's breaker does not count it.
var ErrRecheckUnsupported = errors.New("source cannot recheck this licence without side effects")

// recheckKey marks a context as a recheck's: the Client spends the rate
// budget's recheck share for its requests.
type recheckKey struct{}

// withRecheck marks ctx as a recheck's.
func withRecheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, recheckKey{}, true)
}

// IsRecheck reports whether ctx is a recheck's (set by Resilient.Recheck):
// the requests sent with it spend the recheck share of the rate budget.
func IsRecheck(ctx context.Context) bool {
	v, _ := ctx.Value(recheckKey{}).(bool)
	return v
}

// Recheck asks the wrapped source about a stored licence with its
// side-effect-free call (Rechecker), for the background recheck. It is
// Verify's sibling with these differences:
//
//   - it spends the recheck share of the rate budget (see Budget): at most
//     half of it, and never a call an activation needs; it waits for it at
//     most MaxWait, else answers Unknown with RetryAfter (RecheckWait);
//   - it never answers from the negative cache, so a renewal is seen; and a
//     Valid answer drops the key's cached negatives, so activations see it
//     too. Its own answers are not cached;
//   - concurrent identical rechecks share one call, never an activation's;
//   - an Unknown outcome is not retried: the worker backs off instead.
//
// The breaker, the Retry-After pause, the timeout and the concurrency
// bound apply as for Verify. A source that is no Rechecker is answered
// Unknown with ErrRecheckUnsupported, without a call.
func (r *Resilient) Recheck(ctx context.Context, req RecheckRequest) Verdict {
	rc, ok := r.src.(Rechecker)
	if !ok {
		return UnknownVerdict(fmt.Errorf("%s: %w", r.src.Name(), ErrRecheckUnsupported))
	}
	if err := ctx.Err(); err != nil {
		return UnknownVerdict(err)
	}
	id := r.recheckKey(req)
	ch := r.rechecks.DoChan(id, func() (any, error) {
		fctx, cancel := context.WithTimeout(withRecheck(context.WithoutCancel(ctx)), r.cfg.Timeout+r.cfg.MaxWait)
		defer cancel()
		v, _ := r.attemptCall(fctx, r.budget.RecheckWait, func(ctx context.Context) Verdict { return rc.Recheck(ctx, req) })
		if v.Outcome == Valid {
			r.forgetNegatives(req)
		}
		return v, nil
	})
	select {
	case res := <-ch:
		return res.Val.(Verdict)
	case <-ctx.Done():
		return UnknownVerdict(ctx.Err())
	}
}

// RecheckWait is how long until a recheck of this source could make its
// call (0: now): the recheck share of the rate budget, a Retry-After pause
// and an open breaker. It takes nothing; a worker paces itself by it.
func (r *Resilient) RecheckWait() time.Duration {
	return max(r.budget.RecheckWait(), r.breaker.wait())
}

// recheckKey identifies a recheck without keeping the key itself.
func (r *Resilient) recheckKey(req RecheckRequest) string {
	h := sha256.New()
	fmt.Fprintf(h, "recheck|%d:%s|%d:%s|%d:%s|%d:%s|%d:%s", len(req.Key), req.Key, len(req.Product), req.Product,
		len(req.Domain), req.Domain, len(req.IP), req.IP, len(req.VendorID), req.VendorID)
	return hex.EncodeToString(h.Sum(nil))
}

// forgetNegatives drops the cached definitive answers about req's key that
// a Valid recheck contradicts: asked with its product or without one.
func (r *Resilient) forgetNegatives(req RecheckRequest) {
	for _, product := range []string{req.Product, ""} {
		r.negative.forget(r.flightKey(Request{Key: req.Key, Product: product, Domain: req.Domain}))
	}
}

// Interface guards
var _ Rechecker = (*Resilient)(nil)
